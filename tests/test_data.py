"""Tests of gancr.data: reading images, sources, the unpaired dataset, built-ins, cartoonize."""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gancr import data
from gancr.data import (
    IMAGE_EXTENSIONS,
    DataError,
    DataWarning,
    UnpairedImages,
    cartoonize,
    describe_source,
    load_image,
    resolve_source,
    save_image,
)

BUILTINS = ("builtin:photos", "builtin:cartoon", "builtin:holdout", "builtin:holdout_cartoon")


def _rgb(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth colour gradient with noise, uint8 (h, w, 3)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx / max(w - 1, 1), yy / max(h - 1, 1), 0.5 + 0 * xx], -1) * 200 + 20
    return np.clip(base + rng.normal(0, 12, (h, w, 3)), 0, 255).astype(np.uint8)


def _write(path: Path, h: int = 40, w: int = 56, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(_rgb(h, w, seed)).save(path)
    return path


def _info(path: Path) -> dict:
    """What PIL reads from a file's header (mode, size, format), the file closed again."""
    with Image.open(path) as img:
        return {
            "mode": img.mode,
            "size": img.size,
            "format": img.format,
            "transparency": "transparency" in img.info,
        }


def _folder(tmp_path: Path, n: int = 3, name: str = "imgs", size=(40, 56)) -> Path:
    for i in range(n):
        _write(tmp_path / name / f"im{i}.png", *size, seed=i)
    return tmp_path / name


@pytest.fixture
def builtin_cache(builtin_cache_dir, monkeypatch) -> Path:
    """One cache folder for the session (trainkit's, which the tests that train on the built-ins
    use too), so the built-ins are made once."""
    monkeypatch.setenv("GANCR_CACHE_DIR", str(builtin_cache_dir))
    return builtin_cache_dir


# --- load_image: modes -----------------------------------------------------------------------


def _check(x: torch.Tensor, shape) -> None:
    assert x.dtype == torch.float32
    assert tuple(x.shape) == shape
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0


def test_load_rgb_exact(tmp_path):
    a = _rgb(5, 7)
    Image.fromarray(a).save(tmp_path / "a.png")
    x = load_image(tmp_path / "a.png")
    _check(x, (3, 5, 7))
    assert torch.equal((x * 255).round().to(torch.uint8), torch.from_numpy(a).permute(2, 0, 1))


def test_load_gray_l(tmp_path):
    Image.new("L", (6, 4), 128).save(tmp_path / "g.png")
    x = load_image(tmp_path / "g.png")
    _check(x, (3, 4, 6))
    assert torch.allclose(x, torch.full_like(x, 128 / 255))


def test_load_bilevel(tmp_path):
    img = Image.new("1", (6, 4), 0)
    img.putpixel((1, 1), 1)
    img.save(tmp_path / "b.png")
    x = load_image(tmp_path / "b.png")
    _check(x, (3, 4, 6))
    assert x[:, 1, 1].tolist() == [1.0, 1.0, 1.0] and x[:, 0, 0].tolist() == [0.0, 0.0, 0.0]


def test_load_la_composites_over_white(tmp_path):
    img = Image.new("LA", (4, 2), (50, 255))
    img.putpixel((0, 0), (50, 0))
    img.save(tmp_path / "la.png")
    x = load_image(tmp_path / "la.png")
    _check(x, (3, 2, 4))
    assert torch.allclose(x[:, 0, 0], torch.ones(3))
    assert torch.allclose(x[:, 1, 1], torch.full((3,), 50 / 255))


def test_load_rgba_composites_over_white(tmp_path):
    img = Image.new("RGBA", (4, 2), (255, 0, 0, 255))
    img.putpixel((0, 0), (10, 20, 30, 0))
    img.putpixel((1, 0), (0, 0, 0, 128))
    img.save(tmp_path / "rgba.png")
    x = load_image(tmp_path / "rgba.png")
    _check(x, (3, 2, 4))
    assert torch.allclose(x[:, 0, 0], torch.ones(3))  # alpha 0 -> white
    assert torch.allclose(x[:, 1, 1], torch.tensor([1.0, 0.0, 0.0]))
    assert torch.allclose(x[:, 0, 1], torch.full((3,), 1 - 128 / 255), atol=1e-6)


def test_load_palette(tmp_path):
    img = Image.new("P", (4, 2), 0)
    img.putpalette([0, 0, 255, 0, 255, 0] + [0] * 762)
    img.putpixel((3, 1), 1)
    img.save(tmp_path / "p.png")
    assert _info(tmp_path / "p.png")["mode"] == "P"
    x = load_image(tmp_path / "p.png")
    _check(x, (3, 2, 4))
    assert x[:, 0, 0].tolist() == [0.0, 0.0, 1.0] and x[:, 1, 3].tolist() == [0.0, 1.0, 0.0]


def test_load_palette_with_transparency(tmp_path):
    img = Image.new("P", (4, 2), 0)
    img.putpalette([0, 0, 255, 0, 255, 0] + [0] * 762)
    img.putpixel((3, 1), 1)
    img.save(tmp_path / "pt.png", transparency=0)  # index 0 is transparent
    reloaded = _info(tmp_path / "pt.png")
    assert reloaded["mode"] == "P" and reloaded["transparency"]
    x = load_image(tmp_path / "pt.png")
    assert x[:, 0, 0].tolist() == [1.0, 1.0, 1.0]
    assert x[:, 1, 3].tolist() == [0.0, 1.0, 0.0]


def test_load_cmyk(tmp_path):
    img = Image.new("CMYK", (4, 2), (0, 0, 0, 0))
    img.putpixel((0, 0), (0, 0, 0, 255))
    img.putpixel((1, 0), (0, 255, 255, 0))
    img.save(tmp_path / "c.tif")
    assert _info(tmp_path / "c.tif")["mode"] == "CMYK"
    x = load_image(tmp_path / "c.tif")
    _check(x, (3, 2, 4))
    assert x[:, 1, 1].tolist() == [1.0, 1.0, 1.0]
    assert x[:, 0, 0].tolist() == [0.0, 0.0, 0.0]
    assert x[:, 0, 1].tolist() == [1.0, 0.0, 0.0]


@pytest.mark.parametrize(
    ("mode", "suffix"), [("I;16", ".png"), ("I;16", ".tif"), ("I;16B", ".tif")]
)
def test_load_16bit_scaled_by_its_range(tmp_path, mode, suffix):
    a = np.array([[0, 65535, 32768, 1000]], dtype=np.uint16)
    img = Image.fromarray(a.astype(">u2") if mode == "I;16B" else a)  # convert() would clip
    assert img.mode == mode
    img.save(tmp_path / f"g16{suffix}")
    assert _info(tmp_path / f"g16{suffix}")["mode"] == mode
    x = load_image(tmp_path / f"g16{suffix}")
    _check(x, (3, 1, 4))
    expected = torch.tensor([0.0, 1.0, 32768 / 65535, 1000 / 65535])
    for c in range(3):
        assert torch.allclose(x[c, 0], expected, atol=1e-6)


def test_load_32bit_int(tmp_path):
    img = Image.fromarray(np.array([[0, 65535, 16384]], dtype=np.int32))
    assert img.mode == "I"
    img.save(tmp_path / "i.tif")
    x = load_image(tmp_path / "i.tif")
    assert torch.allclose(x[0, 0], torch.tensor([0.0, 1.0, 16384 / 65535]), atol=1e-6)


def test_load_float(tmp_path):
    img = Image.fromarray(np.array([[0.0, 0.25, 1.0]], dtype=np.float32))
    assert img.mode == "F"
    img.save(tmp_path / "f.tif")
    x = load_image(tmp_path / "f.tif")
    _check(x, (3, 1, 3))
    assert torch.allclose(x[1, 0], torch.tensor([0.0, 0.25, 1.0]))


def test_load_applies_exif_orientation(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    Image.fromarray(_rgb(20, 40)).save(tmp_path / "o.jpg", exif=exif)
    assert _info(tmp_path / "o.jpg")["size"] == (40, 20)
    x = load_image(tmp_path / "o.jpg")
    _check(x, (3, 40, 20))


@pytest.mark.parametrize("kind", ["garbage", "truncated", "missing", "empty"])
def test_load_bad_file_raises_data_error(tmp_path, kind):
    path = tmp_path / "bad.jpg"
    if kind == "garbage":
        path.write_bytes(b"this is not an image" * 10)
    elif kind == "truncated":
        Image.fromarray(_rgb(64, 64)).save(path, quality=95)
        path.write_bytes(path.read_bytes()[:400])
    elif kind == "empty":
        path.write_bytes(b"")
    with pytest.raises(DataError, match=r"^cannot read image .*bad\.jpg: ") as info:
        load_image(path)
    assert isinstance(info.value, ValueError)


# --- save_image ------------------------------------------------------------------------------


def test_save_png_round_trip_exact(tmp_path):
    x = torch.from_numpy(_rgb(9, 13)).permute(2, 0, 1).float() / 255
    out = save_image(x, tmp_path / "deep" / "er" / "x.png")
    assert out == tmp_path / "deep" / "er" / "x.png"
    assert torch.equal(load_image(out), x)
    assert sorted(os.listdir(out.parent)) == ["x.png"]  # no temporary file left behind


def test_save_batch_of_one_and_jpeg(tmp_path):
    x = torch.from_numpy(_rgb(32, 48)).permute(2, 0, 1).float() / 255
    save_image(x[None], tmp_path / "x.jpg")
    assert _info(tmp_path / "x.jpg")["format"] == "JPEG"
    y = load_image(tmp_path / "x.jpg")
    assert y.shape == x.shape and (y - x).abs().mean() < 0.03


def test_save_overwrites_and_clips(tmp_path):
    save_image(torch.zeros(3, 4, 4), tmp_path / "x.png")
    save_image(torch.full((3, 4, 4), 7.0), tmp_path / "x.png")
    assert torch.equal(load_image(tmp_path / "x.png"), torch.ones(3, 4, 4))


def test_save_rgba_keeps_alpha_and_load_alpha_reads_it(tmp_path):
    from gancr.data import load_alpha

    rgba = torch.rand(4, 6, 9)
    rgba[3, :, :4] = 0.0
    rgba[3, :, 4:] = 1.0
    save_image(rgba, tmp_path / "a.png")
    alpha = load_alpha(tmp_path / "a.png")
    assert alpha is not None and alpha.shape == (1, 6, 9)
    assert torch.equal(alpha[0], rgba[3])
    save_image(torch.rand(3, 6, 9), tmp_path / "b.png")
    assert load_alpha(tmp_path / "b.png") is None
    save_image(rgba, tmp_path / "c.jpg")  # JPEG has no alpha: saved as RGB
    assert load_alpha(tmp_path / "c.jpg") is None


def test_save_errors(tmp_path):
    with pytest.raises(ValueError, match=r"save_image: expected .*\(3, H, W\).*got \(5, 8, 8\)"):
        save_image(torch.zeros(5, 8, 8), tmp_path / "x.png")
    with pytest.raises(DataError, match=r"x\.gif.*unsupported extension"):
        save_image(torch.zeros(3, 8, 8), tmp_path / "x.gif")


# --- resolve_source --------------------------------------------------------------------------


def test_resolve_folder_recursive_extensions_case_hidden(tmp_path):
    root = tmp_path / "set"
    for rel in ["b.PNG", "a/x.jpeg", "a/deeper/y.Tif", "c.webp", "d.bmp", "e.JPG", "f.tiff"]:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        fmt = {".jpeg": "JPEG", ".jpg": "JPEG"}.get(p.suffix.lower())
        Image.fromarray(_rgb(8, 8)).save(p, format=fmt or None)
    for rel in [".hidden.png", ".cache/z.png", "a/.git/w.jpg", "notes.txt", "anim.gif"]:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
    got = [p.relative_to(root).as_posix() for p in resolve_source(root)]
    assert got == ["a/deeper/y.Tif", "a/x.jpeg", "b.PNG", "c.webp", "d.bmp", "e.JPG", "f.tiff"]
    assert all(p.is_absolute() for p in resolve_source(str(root)))


def test_resolve_file_and_list(tmp_path):
    folder = _folder(tmp_path, 2)
    single = _write(tmp_path / "one.png")
    assert resolve_source(single) == [single]
    both = resolve_source([str(single), folder, folder / "im0.png"])  # duplicates dropped
    assert both == [single, folder / "im0.png", folder / "im1.png"]


def test_resolve_missing_folder_names_it(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(DataError, match="nope") as info:
        resolve_source(missing)
    assert str(missing) in str(info.value)


def test_resolve_empty_folder_names_it(tmp_path):
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "readme.txt").write_text("hi")
    with pytest.raises(DataError, match=r"no images \(jpg, jpeg, png") as info:
        resolve_source(empty)
    assert str(info.value).endswith(str(empty))


def test_resolve_other_errors(tmp_path):
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(DataError, match=r"a\.txt is not an image file"):
        resolve_source(tmp_path / "a.txt")
    unknown = r"unknown built-in source 'builtin:photo'.*did you mean builtin:photos"
    with pytest.raises(DataError, match=unknown):
        resolve_source("builtin:photo")
    with pytest.raises(DataError, match="empty list"):
        resolve_source([])
    with pytest.raises(TypeError, match="resolve_source"):
        resolve_source(3)  # type: ignore[arg-type]


def test_describe_source(tmp_path):
    folder = _folder(tmp_path, 3)
    assert describe_source(folder) == f"{folder} (3 images)"
    assert describe_source(folder / "im0.png") == f"{folder / 'im0.png'} (1 image)"


def test_image_extensions_constant():
    assert IMAGE_EXTENSIONS == (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")


# --- UnpairedImages --------------------------------------------------------------------------


def test_dataset_shapes_and_len(tmp_path):
    content = _folder(tmp_path, 3, "content", (50, 70))
    style = _folder(tmp_path, 2, "style", (64, 48))
    ds = UnpairedImages(content, style, image_size=32)
    assert len(ds) == 3 and ds.load_size == 36
    assert [p.name for p in ds.style_paths] == ["im0.png", "im1.png"]
    sample = ds[10**12]  # any sample number works
    assert set(sample) == {"content", "style"}
    for x in sample.values():
        _check(x, (3, 32, 32))
    with pytest.raises(IndexError, match="sample number"):
        ds[-1]


def test_dataset_is_a_pure_function_of_seed_and_k(tmp_path):
    content = _folder(tmp_path, 4, "content")
    style = _folder(tmp_path, 3, "style")
    a = UnpairedImages(content, style, image_size=24, seed=5)
    b = UnpairedImages(content, style, image_size=24, seed=5, cache=False)
    for k in (0, 1, 17, 123456789):
        for key in ("content", "style"):
            assert torch.equal(a[k][key], a[k][key])
            assert torch.equal(a[k][key], b[k][key])  # the cache never changes the data
    assert not torch.equal(a[0]["content"], a[1]["content"])
    c = UnpairedImages(content, style, image_size=24, seed=6)
    assert not torch.equal(a[0]["content"], c[0]["content"])


def test_dataset_flip(tmp_path):
    content = _folder(tmp_path, 2, "content")
    flipped = UnpairedImages(content, content, image_size=16, flip=True)
    plain = UnpairedImages(content, content, image_size=16, flip=False)
    n_flipped = 0
    for k in range(16):
        a, b = flipped[k]["content"], plain[k]["content"]
        assert torch.equal(a, b) or torch.equal(a, b.flip(-1))
        n_flipped += not torch.equal(a, b)
    assert 0 < n_flipped < 16


def test_the_device_augmentation_cuts_the_dataset_crop(tmp_path):
    """One crop (issue 20): DeviceAugment draws the dataset's crop, flip and hue rotation, only from
    torch's global generator instead of a sample's own."""
    from gancr.data import DeviceAugment
    from gancr.data.resize import random_resized_crop

    squares = torch.randint(0, 256, (3, 3, 40, 40), dtype=torch.uint8)
    torch.manual_seed(3)
    out = DeviceAugment(16, (0.3, 0.9), flip=True)(squares)
    g = torch.Generator().manual_seed(3)  # the same draws, in the same order
    expected = []
    for image in squares:
        crop = random_resized_crop(image, 16, (0.3, 0.9), g)
        expected.append(crop.flip(-1) if float(torch.rand((), generator=g)) < 0.5 else crop)
    assert torch.equal(out, torch.stack(expected))
    hued = DeviceAugment(16, (0.3, 0.9), hue=0.25)(squares)
    assert hued.shape == (3, 3, 16, 16) and 0 <= hued.min() and hued.max() <= 1


def test_one_resize_keeps_values_in_range_and_sizes_as_asked():
    from gancr.data.resize import fit, resize

    x = torch.rand(3, 37, 53)
    assert resize(x, (20, 30)).shape == (3, 20, 30) and resize(x[None], (20, 30)).shape == (1, 3, 20, 30)
    assert resize(x, scale=0.5).shape == (3, 18, 26) and resize(x, (37, 53)) is x
    assert fit(x, 26).shape == (3, 18, 26) and fit(x, 100) is x
    big = resize(x, (90, 120))
    assert 0 <= big.min() and big.max() <= 1


def test_dataset_scales_small_images_up(tmp_path):
    content = _folder(tmp_path, 1, "content", (10, 14))
    style = _folder(tmp_path, 1, "style", (300, 200))
    ds = UnpairedImages(content, style, image_size=48, load_size=60, crop_scale=(1.0, 1.0))
    assert min(ds._content_cache[0].shape[-2:]) == 60
    assert tuple(ds._style_cache[0].shape) == (3, 90, 60)
    x = ds[0]["content"]
    _check(x, (3, 48, 48))
    assert x.std() > 0.05  # a real, upscaled image, not padding


def test_load_side_longer_puts_every_image_at_one_scale_and_style_images_are_whole(tmp_path):
    content = _folder(tmp_path, 1, "content", (100, 140))
    style = _folder(tmp_path, 1, "style", (300, 200))
    ds = UnpairedImages(content, style, image_size=32, load_size=64, load_side="longer", crop_scale=(0.5, 0.5))
    assert tuple(ds._content_cache[0].shape) == (3, 46, 64)  # (h, w) = (100, 140) scaled to a longer side of 64
    assert tuple(ds._style_cache[0].shape) == (3, 64, 43)
    whole = ds.style_images()
    assert len(whole) == 1 and whole[0].shape == (3, 64, 43) and whole[0].dtype == torch.float32
    assert torch.allclose(whole[0], ds._style_cache[0].float() / 255, atol=2 / 255)  # decoded in full, same scale
    with pytest.raises(ValueError, match="load_side must be 'shorter' or 'longer'"):
        UnpairedImages(content, style, image_size=32, load_side="wider")


@pytest.mark.parametrize("cache", [True, False])
@pytest.mark.parametrize("augment", [True, False])
def test_style_border_keeps_a_paintings_frame_out_of_every_style_sample(tmp_path, cache, augment):
    """A painting with a red strip along its edges: trimmed, no style crop shows red, the
    content is untouched, and style_images() (a Gram target's) is still the whole painting."""
    frame = np.full((80, 100, 3), (40, 90, 200), np.uint8)  # blue inside
    frame[:6], frame[-6:], frame[:, :6], frame[:, -6:] = (230, 20, 20), (230, 20, 20), (230, 20, 20), (230, 20, 20)
    (tmp_path / "style").mkdir()
    Image.fromarray(frame).save(tmp_path / "style" / "framed.png")
    content = _folder(tmp_path, 1, "content", (80, 100))

    def red_share(ds, n=24):
        samples = torch.stack([ds[k]["style"] for k in range(n)]).float()
        if not augment:  # the loader's uint8 squares, for DeviceAugment
            samples = samples / 255
        return float(((samples[:, 0] > 0.6) & (samples[:, 2] < 0.4)).float().mean())

    common = dict(image_size=32, load_size=100, load_side="longer", crop_scale=(0.6, 1.0), cache=cache, augment=augment)
    assert red_share(UnpairedImages(content, tmp_path / "style", **common)) > 0.01
    trimmed = UnpairedImages(content, tmp_path / "style", style_border=0.1, **common)
    assert red_share(trimmed) == 0.0
    whole = trimmed.style_images()[0]
    assert whole.shape == (3, 80, 100) and float(whole[0, 0, 0]) > 0.8  # the frame is still there
    plain = UnpairedImages(content, tmp_path / "style", **common)
    assert torch.equal(trimmed[3]["content"], plain[3]["content"])
    for bad in (-0.1, 0.5):
        with pytest.raises(ValueError, match="style_border must be in"):
            UnpairedImages(content, tmp_path / "style", image_size=32, style_border=bad)


def test_dataset_skips_corrupt_files_with_warnings(tmp_path):
    content = _folder(tmp_path, 2, "content")
    (content / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    Image.fromarray(_rgb(64, 64)).save(content / "trunc.jpg", quality=95)
    (content / "trunc.jpg").write_bytes((content / "trunc.jpg").read_bytes()[:300])
    style = _folder(tmp_path, 1, "style")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = UnpairedImages(content, style, image_size=16)
    messages = [str(w.message) for w in caught if issubclass(w.category, DataWarning)]
    assert len(messages) == 3
    assert "broken.png" in messages[0] and "trunc.jpg" in messages[1]
    assert messages[2] == f"skipped 2 unreadable image(s) in {content}"
    assert [p.name for p in ds.content_paths] == ["im0.png", "im1.png"]
    _check(ds[3]["content"], (3, 16, 16))


def test_dataset_all_unreadable_names_the_source(tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.png").write_bytes(b"nope")
    style = _folder(tmp_path, 1, "style")
    with pytest.warns(DataWarning), pytest.raises(DataError, match=f"no usable images in {bad}"):
        UnpairedImages(bad, style, image_size=16)


def test_dataset_argument_errors(tmp_path):
    folder = _folder(tmp_path, 1)
    with pytest.raises(ValueError, match="image_size must be a positive int"):
        UnpairedImages(folder, folder, image_size=0)
    with pytest.raises(ValueError, match="crop_scale"):
        UnpairedImages(folder, folder, image_size=8, crop_scale=(0.8, 0.2))


def test_dataset_works_with_dataloader(tmp_path):
    folder = _folder(tmp_path, 3)
    ds = UnpairedImages(folder, folder, image_size=16)
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=2)))
    assert batch["content"].shape == (2, 3, 16, 16)


# --- cartoonize ------------------------------------------------------------------------------


def _scene(h: int = 96, w: int = 96) -> torch.Tensor:
    """Two flat regions and a disk, with noise and a gradient: a small 'photograph'."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.where(xx[..., None] < w // 2, [0.85, 0.8, 0.7], [0.3, 0.5, 0.8]).astype(np.float32)
    disk = (yy - h / 2) ** 2 + (xx - w / 4) ** 2 < (h / 6) ** 2
    img[disk] = [0.9, 0.2, 0.1]
    img = img + 0.1 * (yy / h)[..., None] + rng.normal(0, 0.03, img.shape)
    return torch.from_numpy(np.clip(img, 0, 1).astype(np.float32)).permute(2, 0, 1).contiguous()


def _n_colours(x: torch.Tensor) -> int:
    q = (x * 255).round().to(torch.int64)
    return int(torch.unique(q[0] * 65536 + q[1] * 256 + q[2]).numel())


def test_cartoonize_shape_dtype_determinism():
    x = _scene()
    y = cartoonize(x)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert torch.equal(y, cartoonize(x.clone()))
    batch = torch.stack([x, x.flip(-1)])
    yb = cartoonize(batch)
    assert yb.shape == batch.shape
    assert torch.allclose(yb[0], y, atol=1e-5)
    assert cartoonize(x.double()).dtype == torch.float64
    for shape in [(3, 1, 1), (3, 5, 9), (2, 3, 17, 20)]:
        assert cartoonize(torch.rand(shape)).shape == shape


def test_cartoonize_flattens_colours_and_draws_dark_edges():
    x = _scene()
    y = cartoonize(x)
    assert 0.0 <= float(y.min()) and float(y.max()) <= 1.0
    assert _n_colours(y) * 20 < _n_colours(x)
    # the border between the two halves becomes a dark outline
    border = y[:, 10:-10, 46:50].mean(0).amin(dim=1)
    assert (border < 0.15).float().mean() > 0.9
    # flat regions keep their colour
    assert (y[:, 5:20, 5:20] - x[:, 5:20, 5:20].mean((1, 2), keepdim=True)).abs().mean() < 0.08


def test_cartoonize_errors():
    with pytest.raises(ValueError, match=r"cartoonize: expected .*\(3, H, W\).*got \(1, 8, 8\)"):
        cartoonize(torch.rand(1, 8, 8))
    with pytest.raises(TypeError, match="cartoonize: expected a floating-point"):
        cartoonize(torch.zeros(3, 8, 8, dtype=torch.uint8))


def test_cartoonize_module():
    x = _scene(32, 32)[None]
    assert torch.equal(data.Cartoonize()(x), cartoonize(x))


# --- built-in sources ------------------------------------------------------------------------


def test_builtin_names():
    assert data.builtin_source_names() == BUILTINS
    assert set(data.BUILTIN_SOURCES) == set(BUILTINS)
    assert all(data.BUILTIN_SOURCES[n] for n in BUILTINS)


def test_builtins_exist_and_keep_the_holdout_out_of_training(builtin_cache):
    sets = {name: resolve_source(name) for name in BUILTINS}
    for name, paths in sets.items():
        assert paths and all(p.is_file() and p.suffix == ".png" for p in paths), name
        assert all(builtin_cache in p.parents for p in paths), name
        assert describe_source(name) == f"{name} ({len(paths)} images)"
    stems = {name: {p.stem for p in paths} for name, paths in sets.items()}
    # the two training domains are the same photographs, so they differ in style only
    assert [p.stem for p in sets["builtin:cartoon"]] == [p.stem for p in sets["builtin:photos"]]
    assert not stems["builtin:photos"] & stems["builtin:holdout"]
    holdout = [p.stem for p in sets["builtin:holdout"]]
    assert [p.stem for p in sets["builtin:holdout_cartoon"]] == holdout
    # the stereo pair is on one side of the training / held-out line
    assert {"motorcycle_left", "motorcycle_right"} <= stems["builtin:photos"]
    for p in sets["builtin:photos"]:
        x = load_image(p)
        assert min(x.shape[-2:]) <= 512 and x.std() > 0.05
    photo, cartoon = sets["builtin:photos"][1], sets["builtin:cartoon"][1]
    expected = data.cartoonize(load_image(photo))
    assert (load_image(cartoon) - expected).abs().max() <= 1.0 / 255 + 1e-6


def test_builtin_holdout_has_more_than_two_photographs_from_installed_packages(builtin_cache, tmp_path):
    photos = resolve_source("builtin:holdout")
    assert [p.stem for p in photos] == ["chelsea", "rocket", "grace_hopper", "camera"]
    assert all(data.BUNDLED_PHOTOS[p.stem][3] for p in photos)  # each keeps its licence note
    targets = data.known_targets(photos[:1], tmp_path / "targets")
    assert targets == [tmp_path / "targets" / "chelsea.png"]
    assert (load_image(targets[0]) - load_image(resolve_source("builtin:holdout_cartoon")[0])).abs().max() <= 1 / 255 + 1e-6


def test_builtin_holdout_without_matplotlib(tmp_path, monkeypatch):
    monkeypatch.setenv("GANCR_CACHE_DIR", str(tmp_path / "fresh"))
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(DataError, match=r'builtin:holdout needs the package matplotlib: pip install "gancr\[data\]"'):
        resolve_source("builtin:holdout")


def test_builtin_holdout_cartoon_is_cartoonize_of_holdout(builtin_cache):
    photos, targets = resolve_source("builtin:holdout"), resolve_source("builtin:holdout_cartoon")
    for photo, target in zip(photos, targets):
        x, y = load_image(photo), load_image(target)
        assert x.shape == y.shape
        assert (cartoonize(x) - y).abs().max() <= 1 / 255 + 1e-6
        assert _n_colours(y) * 5 < _n_colours(x)


def test_builtins_are_cached(builtin_cache):
    first = resolve_source("builtin:cartoon")
    stamps = [p.stat().st_mtime_ns for p in first]
    assert resolve_source("builtin:cartoon") == first
    assert [p.stat().st_mtime_ns for p in first] == stamps
    assert first[0].parent.parent.name.startswith("builtin-v")


def test_builtin_dataset(builtin_cache):
    ds = UnpairedImages("builtin:photos", "builtin:cartoon", image_size=32)
    assert len(ds) == len(ds.content_paths) == len(ds.style_paths) == 7
    _check(ds[7]["style"], (3, 32, 32))


def test_builtin_without_scikit_image(tmp_path, monkeypatch):
    monkeypatch.setenv("GANCR_CACHE_DIR", str(tmp_path / "fresh"))
    monkeypatch.setitem(sys.modules, "skimage", None)  # find_spec() then reports it missing
    needs = r'builtin:photos needs the package skimage: pip install "gancr\[data\]"'
    with pytest.raises(DataError, match=needs):
        resolve_source("builtin:photos")
