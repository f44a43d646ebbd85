"""The lab-machine and debug profiles configure correctly on the real source
(the vm profile is configured by every build). Needs the extracted source."""

from __future__ import annotations

from pathlib import Path

import pytest

from iro_pipeline import kconfig, patches, source
from iro_pipeline.paths import cache_root


def extracted_source() -> source.KernelSource | None:
    if not list((cache_root() / "src").glob("*/source.json")):
        return None
    return source.resolve(None)


@pytest.mark.parametrize("profile", ["debian", "debug"])
def test_profile_configures(profile: str, tmp_path: Path) -> None:
    src = extracted_source()
    if src is None:
        pytest.skip("kernel source not extracted yet: ./iro build")
    tree = patches.work_tree(src)
    digest = kconfig.configure(src, tree, profile, tmp_path)
    values = kconfig.read_dotconfig(tmp_path / ".config")
    assert len(digest) == 64
    assert {k: values.get(k) for k in ("XFRM_USER", "IPV6_MIP6", "XFRM_SUB_POLICY")} == dict.fromkeys(
        ("XFRM_USER", "IPV6_MIP6", "XFRM_SUB_POLICY"), "y")
    if profile == "debug":
        assert values.get("KASAN") == values.get("PROVE_LOCKING") == values.get("DEBUG_KMEMLEAK") == "y"
    else:
        assert values.get("CONFIG_MODULES", values.get("MODULES")) == "y"
