"""What ``gancr train`` would fail on at once, checked without training (``gancr validate``).

:func:`preflight` runs the set-up a training run does before its first step — the plugins a
spec requires, the device and precision, the trio, the losses with their encoders, the
balancer, the optimisers, the data sources — and reports each as a :class:`Check`, stopping
at nothing: every problem is listed. It also says plainly what it does not check.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gancr.errors import GancrError

__all__ = ["Check", "Preflight", "preflight", "check_content_net_use", "check_weights", "weights_files", "NOT_CHECKED"]

#: What a preflight does not check, in plain words (``gancr validate`` prints it).
NOT_CHECKED = (
    "that every image file decodes (the first image of each source is opened; training skips unreadable ones)",
    "the output folder (train --out): whether it can be written, or already holds a run",
    "that the losses stay finite and memory suffices at the spec's batch and image size",
)


@dataclass
class Check:
    """One thing checked: its name, whether it holds, and what was found (or the error)."""

    name: str
    ok: bool
    detail: str


@dataclass
class Preflight:
    """The checks of one spec, and what was not checked."""

    checks: list[Check] = field(default_factory=list)
    not_checked: list[str] = field(default_factory=lambda: list(NOT_CHECKED))
    generator_parameters: int | None = None

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {"checks": [asdict(c) for c in self.checks], "not_checked": list(self.not_checked),
                "generator_parameters": self.generator_parameters}

    def run(self, name: str, fn: Callable[[], str]) -> bool:
        """Run one check: ``fn`` returns what it found, or raises a user error (a :class:`GancrError`)."""
        try:
            self.checks.append(Check(name, True, fn()))
            return True
        except GancrError as exc:
            self.checks.append(Check(name, False, str(exc)))
            return False


def weights_files(data: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """``(path, file)`` of every ``weights: FILE`` in a spec's data (components name their weights so)."""
    if isinstance(data, dict):
        for key, value in data.items():
            where = f"{path}.{key}" if path else str(key)
            if key == "weights" and isinstance(value, str):
                yield where, value
            else:
                yield from weights_files(value, where)
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from weights_files(value, f"{path}.{i}")


def check_weights(data: Any) -> str:
    """Check every ``weights:`` of a spec's data without reading them: a named pretrained source
    (``weights: hed``) is installed, a file exists (and a ``.h5`` has its reader). Returns what
    was named.

    Raises:
        GancrError: each missing source or file, with its place and how to install or find it.
    """
    from gancr.storage.hed import hed_missing
    from gancr.storage.pretrained import get_source, sources

    problems, named = [], []
    for where, value in weights_files(data):
        named.append(value)
        if value in sources():
            why = get_source(value).missing() if get_source(value).missing is not None else None
            if why is not None:
                problems.append(f"{where}: {why}")
        elif not Path(value).expanduser().is_file():
            problems.append(f"{where}: no such file {value}")
        elif value.lower().endswith(".h5") and (why := hed_missing(file=False)) is not None:
            problems.append(f"{where}: {why}")
    if problems:
        raise GancrError("; ".join(problems))
    return _listed(named, "none named")


def check_content_net_use(spec: Any, losses: Any) -> None:
    """A :class:`GancrError` when content losses use the features of a content net that is not trained."""
    if spec.model.content_net.train:
        return
    users = [i.name for i, t in zip(spec.losses.content, losses.content) if not getattr(t.loss, "reconstruction", True)]
    if users:
        raise GancrError(
            f"model.content_net.train is false, but content losses {users} use the content "
            "net's features; train it, or drop those losses"
        )


def preflight(spec: Any, *, build_models: bool = True) -> Preflight:
    """Check a validated spec as ``gancr train`` would set it up; see the module's doc.

    Args:
        spec: a validated :class:`~gancr.spec.Spec`.
        build_models: build the trio, losses and optimisers (``False``: only the files,
            data and device; the models then go under ``not_checked``).
    """
    from gancr.devices import resolve_device, resolve_precision
    from gancr.spec.requirements import check_requirements

    report = Preflight()
    t = spec.training
    report.run("requirements", lambda: (check_requirements(spec), _listed(spec.requires, "none required"))[1])

    def device() -> str:
        dev = resolve_device(t.device, "training.device")
        return f"{dev} ({resolve_precision(t.precision, dev)})"

    report.run("device", device)

    report.run("weights files", lambda: check_weights(spec.to_dict()))

    for domain in ("content", "style"):
        report.run(f"data.{domain}", lambda domain=domain: _source(getattr(spec.data, domain), f"data.{domain}"))
    if build_models:
        _models(spec, report)
    else:
        report.not_checked.insert(0, "the trio, losses, balancer and optimisers (validate --no-build)")
    return report


def _models(spec: Any, report: Preflight) -> None:
    import torch

    from gancr.builder import build, build_losses

    built: dict[str, Any] = {}

    def trio() -> str:
        built["trio"] = build(spec)
        n = sum(p.numel() for p in built["trio"].generator.parameters())
        report.generator_parameters = n
        return f"generator {n / 1e6:.2f}M parameters; content net and discriminator build"

    def losses() -> str:
        built["losses"] = losses_ = build_losses(spec)
        check_content_net_use(spec, losses_)
        items = [*spec.losses.content, *spec.losses.style]
        names = []
        for item, term in zip(items, [*losses_.content, *losses_.style]):
            encoder = getattr(term.loss, "encoder", None)
            if isinstance(encoder, torch.nn.Module):
                weights = "pretrained" if getattr(encoder, "pretrained", False) else "random weights"
                names.append(f"{item.name} (encoder {type(encoder).__name__}, {weights})")
            else:
                names.append(item.name)
        return f"{', '.join(names)}; balancer {spec.training.balancer.name}"

    if report.run("trio", trio) and report.run("losses", losses):
        def optimisers() -> str:
            from gancr.training.optimizers import make_optimizer

            o = spec.training.optimizer
            make_optimizer(o, built["trio"].parameters(), o.lr.generator, torch.device("cpu"))
            return f"{o.name} ({o.implementation})"

        report.run("optimisers", optimisers)


def _source(source: Any, where: str) -> str:
    from gancr.data import load_image, resolve_source, source_label

    try:
        paths = resolve_source(source)
    except GancrError as exc:
        raise GancrError(f"{where}: {exc}") from None
    if not paths:
        raise GancrError(f"{where}: {source_label(source)} holds no images")
    try:
        image = load_image(paths[0])
    except Exception as exc:  # noqa: BLE001 - any decoder error: the file named
        raise GancrError(f"{where}: cannot read {paths[0]}: {exc}") from None
    h, w = image.shape[-2:]
    return f"{source_label(source)}: {len(paths)} image(s); the first ({paths[0].name}, {w}x{h}) opened"


def _listed(items: list[str], empty: str) -> str:
    return ", ".join(items) if items else empty
