"""File formats and file identity shared by discovery (`daemon.library`) and the writers
(`daemon.output`): one home each, so both sides read a file the same way.

- `errors`: `UnreadableFile(reason)`, the one error every reader raises.
- `limits`: every reader limit in one place, each with why its number.
- `budget`: the per-file reading budget (CPU time, structures visited, bytes read) that every
  reader call spends from, so no file can cost more than a real one.
- `binio`: `BoundedFile` (capped reads at absolute offsets) and checked big-endian integers.
- `bmff`: ISO-BMFF (MP4/MOV/HEIF) boxes, read with limits and written (`box`, `full_box`).
- `exif`: the TIFF/EXIF IFD walker (`Tiff`), the Apple maker-note ContentIdentifier and
  Orientation readers, and the Apple EXIF block the fixture builders write.
- `xmp`: the XMP reader (expat, namespace URIs, size/depth/entity limits).
- `signature`: `FileSignature` (size, mtime, named content digest), the stat fingerprint.
- `opening`: `open_regular`, how every reader opens a file (a regular file, never through a
  link out of the library, checked on the file actually opened), and `confined_to(root)`.
- `names`: the escaped text form of file names (`album-\\xff\\xfe`): how names that are not
  UTF-8 are stored, logged and shown, losslessly.

This package imports nothing of `daemon` outside itself (and `core.hashing` for digests).
"""
