"""``import gancr`` is cheap; heavy libraries load only when a component needs them."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import gancr

HEAVY = ("torch", "torchvision", "timm", "kornia", "numpy", "pydantic", "yaml", "PIL")


def _run(code: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_import_gancr_imports_no_third_party_package_but_pluggy():
    found = _run(f"""
        import json, sys
        before = set(sys.modules)
        import gancr
        new = sorted({{m.split(".")[0] for m in set(sys.modules) - before}})
        gancr.hookimpl, gancr.__version__, dir(gancr)  # no lazy import either
        heavy = [m for m in {HEAVY!r} if m in sys.modules]
        print(json.dumps({{"new": new, "heavy": heavy, "stdlib": sorted(sys.stdlib_module_names)}}))
    """)
    assert found["heavy"] == []
    third_party = [m for m in found["new"] if m not in found["stdlib"] and not m.startswith("_")]
    assert sorted(third_party) == ["gancr", "pluggy"]


def test_components_import_their_libraries_only_when_built():
    found = _run("""
        import json, sys
        import torch
        torch.set_num_threads(1)
        import gancr

        def loaded():
            return [m for m in ("timm", "kornia", "torchvision") if m in sys.modules]

        stages = {}
        gancr.list_components()
        stages["listed"] = loaded()
        gancr.load_spec({
            "model": {"generator": {"encoder": {"name": "timm", "model_name": "resnet18"}}},
            "losses": {"content": [{"name": "ssim"}, {"name": "perceptual"}, {"name": "edge"}]},
        })
        stages["validated"] = loaded()
        gancr.build({"model": {"generator": {"encoder": {"name": "vgg19", "layer": "relu2_1"}},
                               "content_net": {"share_encoder": True},
                               "discriminator": {"name": "patchgan", "layers": 2, "width": 8}},
                     "training": {"image_size": 32}})
        stages["built"] = loaded()
        ssim = gancr.build_component("content_loss", "ssim")
        stages["built_ssim"] = loaded()
        ssim(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16))
        stages["ran_ssim"] = loaded()
        print(json.dumps(stages))
    """)
    assert found["listed"] == [] and found["validated"] == []
    assert found["built"] == []  # vgg19 has gancr's own copy of torchvision's layout
    assert found["built_ssim"] == []
    assert found["ran_ssim"] == ["kornia"]  # the check does see a lazy import


def test_the_public_names_resolve():
    foundation = {"gancr.plugins", "gancr.registry", "gancr.spec", "gancr.build", "gancr.errors"}
    for name, module in gancr._LAZY.items():
        if module in foundation:
            assert getattr(gancr, name) is not None, name
    assert callable(gancr.build) and callable(gancr.load_spec) and callable(gancr.list_components)
    assert gancr.registry.register is not None and gancr.registry.list("encoder")
    assert set(gancr.__all__) <= set(dir(gancr))
    for error in ("SpecError", "BuildError", "UnknownComponentError", "DuplicateComponentError",
                  "PluginError", "CheckpointError"):
        assert issubclass(getattr(gancr, error), gancr.GancrError)
