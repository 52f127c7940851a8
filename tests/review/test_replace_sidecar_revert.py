"""Replace mode with `[output] xmp_sidecar = true` writes the target's own sidecar path
(`IMG_E1201.HEIC.xmp`); `lmd revert` gives back what was there: the person's sidecar as it was,
or none where there was none. It left lmd's sidecar in place (a person's rewritten with lmd's
provenance, or a new file lmd added). A sidecar someone edited since lmd wrote it is left as
it is."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.cli import main
from daemon.logging import configure_logging
from tests.review.helpers import copy_library, scan_and_work, settings_for

PERSONS = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
    b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about="" '
    b'xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:Rating="4"/></rdf:RDF></x:xmpmeta>'
)


def test_revert_gives_the_targets_sidecars_back(
    tmp_path: Path, source_library: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    library = copy_library(source_library, tmp_path)
    folder = library / "2026"
    stills = {p: p.read_bytes() for p in sorted(folder.glob("IMG_E*.HEIC"))}
    first, second, third = stills
    (folder / "IMG_E1201.HEIC.xmp").write_bytes(PERSONS)
    config = tmp_path / "lmd.toml"
    config.write_text(f'library = "{library}"\nstate_dir = "{tmp_path / "state"}"\n'
                      '[watcher]\nmode = "off"\n[output]\nmode = "replace"\nxmp_sidecar = true\n')
    for name in ("LMD_STATE_DIR", "LMD_DATABASE_URL", "LMD_LIBRARY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LMD_CONFIG", str(config))
    configure_logging("warning")
    settings = settings_for(tmp_path, library, output={"mode": "replace", "xmp_sidecar": True})
    scan_and_work(settings).close()
    sidecars = [p.with_name(p.name + ".xmp") for p in (first, second, third)]
    assert all(p.is_file() for p in sidecars)
    assert sidecars[0].read_bytes() != PERSONS  # lmd's provenance added, the rating carried
    sidecars[2].write_bytes(sidecars[2].read_bytes().replace(b"</x:xmpmeta>",
                                                             b"<!-- edited --></x:xmpmeta>"))
    edited = sidecars[2].read_bytes()

    assert main(["revert", "--all"]) == 0, capsys.readouterr()
    assert {p: p.read_bytes() for p in stills} == stills
    assert sidecars[0].read_bytes() == PERSONS
    assert not sidecars[1].exists()
    assert sidecars[2].read_bytes() == edited  # changed since lmd wrote it: left alone
    backups = Path(settings.output.backup_dir)
    assert not [p for p in backups.rglob("*") if p.is_file()]  # nothing of lmd's left behind
