"""Writing restored stills safely (sidecar tree, beside, or replace with backup and revert).

`daemon.output` is the one home of file writing in lmd: atomic writes (`atomic`), directories
opened below a root without following symlinks (`beneath`), EXIF patching that keeps maker notes
verbatim (`exif`), XMP carry-over with provenance (`xmp`), encoding in the target's format
(`image`), destination planning (`plan`), replace with backup (`replace`, the target's metadata
in `filemeta`) and putting originals back (`revert`: `lmd revert` and the worker's undo).

The worker's part: pass `fence` (raising `FenceLost` once the job's lease is gone) to
`write_image`/`commit_replace`; call `undo_replace(record)` when the result cannot be recorded
after `commit_replace` because the lease was lost; fail jobs on `PermanentOutputError`
(`ReadOnlyLibrary`, `NameTooLong`, `UnsafePath`, `ReferenceTargetError`) without retry;
`check_writable` before restoring spares a restoration that could never be written.
"""

from core.hashing import digest_file
from daemon.output.atomic import (
    TEMP_PREFIX,
    Fence,
    atomic_write,
    atomic_write_bytes,
    check_writable,
    signature_of,
)
from daemon.output.errors import (
    FenceLost,
    NameTooLong,
    OutputError,
    PermanentOutputError,
    ReadOnlyLibrary,
    ReferenceTargetError,
    RevertConflict,
    UnsafePath,
)
from daemon.output.exif import apple_content_identifier, patch_exif
from daemon.output.filemeta import FileMeta
from daemon.output.image import CarriedMetadata, read_metadata, verify_image, write_image
from daemon.output.plan import OutputPlan, beside_name, check_beside_suffix, plan_output
from daemon.output.replace import (
    ReplaceRecord,
    commit_replace,
    is_own_output,
    iter_records,
    load_record,
)
from daemon.output.revert import RevertOutcome, revert, undo_replace
from daemon.output.xmp import LMD_NS, merge_xmp, read_provenance

__all__ = [
    "LMD_NS",
    "TEMP_PREFIX",
    "CarriedMetadata",
    "Fence",
    "FenceLost",
    "FileMeta",
    "NameTooLong",
    "OutputError",
    "OutputPlan",
    "PermanentOutputError",
    "ReadOnlyLibrary",
    "ReferenceTargetError",
    "ReplaceRecord",
    "RevertConflict",
    "RevertOutcome",
    "UnsafePath",
    "apple_content_identifier",
    "atomic_write",
    "atomic_write_bytes",
    "beside_name",
    "check_beside_suffix",
    "check_writable",
    "commit_replace",
    "digest_file",
    "is_own_output",
    "iter_records",
    "load_record",
    "merge_xmp",
    "patch_exif",
    "plan_output",
    "read_metadata",
    "read_provenance",
    "revert",
    "signature_of",
    "undo_replace",
    "verify_image",
    "write_image",
]
