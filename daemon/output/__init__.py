"""Writing restored stills safely (sidecar tree, beside, or replace with backup and revert).

`daemon.output` is the one home of file writing in lmd: atomic writes (`atomic`), EXIF patching
that keeps maker notes verbatim (`exif`), XMP carry-over with provenance (`xmp`), encoding in the
target's format (`image`), destination planning (`plan`) and replace/revert (`replace`).
"""

from daemon.output.atomic import (
    TEMP_PREFIX,
    atomic_copy,
    atomic_write,
    atomic_write_bytes,
    sha256_file,
    signature_of,
    sweep_temp_files,
)
from daemon.output.errors import OutputError, ReferenceTargetError, RevertConflict
from daemon.output.exif import apple_content_identifier, patch_exif
from daemon.output.image import CarriedMetadata, read_metadata, verify_image, write_image
from daemon.output.plan import OutputPlan, beside_name, check_beside_suffix, plan_output
from daemon.output.replace import (
    ReplaceRecord,
    commit_replace,
    is_own_output,
    iter_records,
    load_record,
    revert,
)
from daemon.output.xmp import LMD_NS, merge_xmp, read_provenance

__all__ = [
    "LMD_NS",
    "TEMP_PREFIX",
    "CarriedMetadata",
    "OutputError",
    "OutputPlan",
    "ReferenceTargetError",
    "ReplaceRecord",
    "RevertConflict",
    "apple_content_identifier",
    "atomic_copy",
    "atomic_write",
    "atomic_write_bytes",
    "beside_name",
    "check_beside_suffix",
    "commit_replace",
    "is_own_output",
    "iter_records",
    "load_record",
    "merge_xmp",
    "patch_exif",
    "plan_output",
    "read_metadata",
    "read_provenance",
    "revert",
    "sha256_file",
    "signature_of",
    "sweep_temp_files",
    "verify_image",
    "write_image",
]
