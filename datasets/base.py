"""The dataset interface every loader implements.

A dataset is a class registered under a name, built from its config section
(validated against ``default_conf``). It streams samples scene by scene, never
holding images in memory, and can validate its own folder layout::

    @DATASETS.register("mydata")
    class MyData(Dataset):
        default_conf = {"root": None}
        task = TASK_RELATIVE            # what the solver must produce
        protocol = "relpose"            # which metrics score it (benchmark.protocols)
        def scenes(self): ...
        def samples(self, scene): ...   # yields PairSample / QuerySample
        def problems(self): ...         # list of "file:line: what is wrong" strings
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Iterator

from benchmark.config import PROJECT_ROOT, merge
from benchmark.config_types import class_schema
from benchmark.errors import SampleError, UserError
from benchmark.types import InvalidSample

from .files import file_problems, sample_files


def select_scenes(found: list[str], wanted, key: str, where) -> list[str]:
    """The scenes named by ``dataset.<key>`` in the order found (all when none are named); naming one
    that ``where`` does not hold is an error that lists them."""
    if not wanted:
        return found
    missing = [s for s in wanted if s not in found]
    if missing:
        shown = ", ".join(found[:5]) + (f" (+{len(found) - 5} more)" if len(found) > 5 else "")
        raise UserError(
            f"dataset.{key} names {', '.join(missing)}, which {where} does not hold; it holds {shown or 'none'}."
        )
    return [s for s in found if s in wanted]


class Dataset:
    name: ClassVar[str] = "?"
    default_conf: ClassVar[dict] = {"root": None}
    # Types a default cannot say (null defaults, unions, ranges, choices): benchmark.config_types.
    conf_types: ClassVar[dict] = {"root": str | None}
    task: ClassVar[str] = ""
    protocol: ClassVar[str] = ""
    # Where to get the data, for the "missing root" sentence.
    download_hint: ClassVar[str] = ""

    def __init__(self, conf: dict | None = None):
        conf = dict(conf or {})
        for key in ("name", "label"):
            conf.pop(key, None)
        self.conf = merge(
            self.default_conf, conf, f"the '{self.name}' dataset config", "dataset.", class_schema(type(self))
        )

    @property
    def root(self) -> Path:
        root = self.conf.get("root")
        if root in (None, ""):
            raise UserError(
                f"The {self.name} dataset needs its folder: pass --set dataset.root=PATH"
                f"{' (' + self.download_hint + ')' if self.download_hint else ''}."
            )
        path = Path(root).expanduser()
        if not path.is_absolute():
            path = (Path.cwd() / path) if (Path.cwd() / path).exists() else (PROJECT_ROOT / path)
        return path

    def check(self) -> None:
        """Fail fast (before any work) when the dataset cannot be read at all."""
        root = self.root
        if not root.is_dir():
            raise UserError(
                f"The {self.name} dataset folder {root} does not exist; pass --set dataset.root=PATH"
                f"{' (' + self.download_hint + ')' if self.download_hint else ''}."
            )

    def problems(self, decode: bool = True) -> list[str]:
        """Every problem of the dataset folder, one sentence each (for `datasets check`): the layout, every
        malformed line of every list file, every missing file and, with ``decode``, every image or depth
        map the samples use that does not decode completely."""
        try:
            out = self.layout_problems()
            scenes = self.scenes()
        except UserError as exc:
            return [str(exc)]
        files = []
        for scene in scenes:
            files += self.scene_files(scene)
            try:
                for item in self.check_samples(scene, out):
                    if isinstance(item, InvalidSample):
                        out.append(item.reason)
                    else:
                        files += sample_files(item)
            except SampleError as exc:  # the scene cannot be read at all
                out.append(str(exc))
        return list(dict.fromkeys(out + file_problems(files, decode)))

    def layout_problems(self) -> list[str]:
        """Problems found before looking at scenes; raise UserError when nothing else can be checked."""
        self.check()
        return []

    def scene_files(self, scene: str) -> list[tuple[Path, str]]:
        """(path, kind) of files of the scene that `datasets check` decodes besides those of the samples
        (e.g. frames a protocol does not evaluate, so that a damaged folder is found whole)."""
        return []

    def check_samples(self, scene: str, problems: list[str]) -> Iterator:
        """The scene's samples for `datasets check`. A loader whose ``samples`` stops at the first malformed
        line of a file writes this to append every malformed line to ``problems`` and go on."""
        return self.samples(scene)

    def scenes(self) -> list[str]:
        raise NotImplementedError

    def samples(self, scene: str) -> Iterator:
        raise NotImplementedError

    def __iter__(self):
        for scene in self.scenes():
            yield from self.samples(scene)

    def has_ground_truth_depth(self) -> bool:
        """True when the pair samples' ``depth0`` is ground truth (not a network's estimate): match
        pictures then colour matches by their reprojection error through it."""
        return False
