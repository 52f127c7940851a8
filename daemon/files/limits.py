"""Every limit of lmd's file readers, in one place, with why each number is what it is.

A photo library is untrusted input: any field of a file can lie. Two kinds of limit keep a
hostile file from costing more than a real one:

- the **per-file budget** (`FILE_*`): what one reader call may spend on one file in all, CPU
  time, structures visited and bytes read, enforced by `daemon.files.budget.ReadBudget`;
- the **per-structure caps** below it: the largest box, item table, segment run, IFD, packet
  or plist a real phone writes, with a wide margin, so a lying size or count is refused at
  the structure that lies, with a reason naming it.

Real files use a tiny part of each: an iPhone HEIC has about 50 items and a few hundred boxes,
its metadata (EXIF, XMP) is read in under 5 ms; a Live Photo MOV's `moov` is tens of KB.
"""

from __future__ import annotations

# --------------------------------------------------------------------------- per-file budget

FILE_CPU_SECONDS = 1.0
"""CPU seconds one reader call may spend on one file (thread CPU time, so a slow disk, a
sleeping NAS or a busy machine never counts against a file). Reading a real photo's metadata
takes under 5 ms; 1 s is 200 times that, and keeps a hostile file to one second of one scan
thread. The fuzzing bench (`bench/fuzz.py`) flags inputs over 2 s, which this stays below."""

FILE_STRUCTURES = 100_000
"""Structures (boxes, HEIF items and extents, JPEG segments, IFD entries, metadata keys, XMP
directory nodes) one reader call may visit in one file. A real file has hundreds; every count
cap below is per container, and containers nest, so this bounds their product: at a few
microseconds each, 100,000 is at most a few tenths of a second, and a few MB of parsed state."""

FILE_READ_BYTES = 64 * 1024 * 1024
"""Bytes one reader call may read from one file (across every handle it opens). The largest
single read is a `moov` (`MAX_MOOV_BYTES`, 32 MB) or a HEIF `meta` plus its metadata items;
64 MB leaves room for both in a Motion Photo, and bounds the raw bytes a reader holds."""

CHECK_CLOCK_EVERY = 256
"""Structures visited between two looks at the CPU clock (a look costs about a microsecond;
256 structures cost well under a millisecond, so the deadline is overrun by less than that)."""

# --------------------------------------------------------------------------- reads and boxes

MAX_SINGLE_READ = FILE_READ_BYTES
"""Largest single read at an offset (`BoundedFile.read_at`): no more than the whole budget."""

MAX_BOXES = 4096
"""Child boxes of one ISO-BMFF container. A `moov` has tens, a HEIF `iinf` one `infe` per
item (`MAX_ITEMS`); 4096 is the HEIF item cap, the largest legitimate list."""

BOX_MAX_DEPTH = 12
"""Nesting of ISO-BMFF containers. The deepest path lmd reads, moov/trak/mdia/minf/stbl/
stsd/mebx/keys/keyd, is 9 deep."""

# --------------------------------------------------------------------------- EXIF

MAX_IFD_ENTRIES = 512
"""Entries of one TIFF IFD. iPhone IFD0 has about 15, the EXIF IFD about 60, the Apple maker
note about 50."""

# --------------------------------------------------------------------------- stills (JPEG, HEIF)

MAX_JPEG_SEGMENTS = 256
"""Markers before the first scan of a JPEG (fill bytes included). Phones write about 10 (APP0/1/2
blocks, quantisation and Huffman tables, start of frame)."""

MAX_META_BYTES = 8 * 1024 * 1024
"""HEIF `meta` box. An iPhone's is 3-10 KB (item info, locations, properties of ~50 items)."""

MAX_ITEM_BYTES = 4 * 1024 * 1024
"""One HEIF metadata item (EXIF or XMP) read into memory. XMP packets are capped at
`MAX_PACKET_BYTES` anyway; EXIF at 64 KB in JPEG, a few KB from phones."""

MAX_ITEMS = 4096
"""HEIF items (`iinf` entries, `iloc` entries). A 48 MP iPhone HEIC has about 100 (grid tiles,
thumbnail, depth and gain maps, EXIF, XMP)."""

MAX_EXTENTS = 1024
"""Extents of one HEIF item in `iloc`. Phones write one per item."""

# --------------------------------------------------------------------------- QuickTime / MP4

MAX_MOOV_BYTES = 32 * 1024 * 1024
"""The `moov` box, read whole. A 3 s Live Photo's is about 20 KB; an hour of 60 fps video with
one sample-table entry per frame is about 10 MB."""

MAX_TRACKS = 64
"""Tracks of one movie. A Live Photo MOV has 3-6 (video, audio, metadata tracks)."""

MAX_EDITS = 256
"""Entries of one edit list (`elst`). Phones write one or two."""

MAX_METADATA_KEYS = 4096
"""Keys of a QuickTime `keys` box. Live Photo MOVs have about 10."""

MAX_SAMPLE_TIMES = 1_000_000
"""Entries of a sample-to-time table (`stts`), summed without being stored. Constant frame
rate video has one; variable frame rate one per frame: 1,000,000 is 4.6 hours at 60 fps."""

MAX_TIME_S = 24 * 3600.0
"""Longest time (edit list, still-image-time) accepted: a day; a Live Photo is 3 seconds."""

# --------------------------------------------------------------------------- AAE sidecars

MAX_AAE_BYTES = 2 * 1024 * 1024
"""An AAE plist, read whole. Photos writes 1-10 KB."""

MAX_AAE_JSON_BYTES = 4 * 1024 * 1024
"""The inflated `adjustmentData` JSON (DEFLATE bombs stop here). Photos writes 1-20 KB."""

MAX_ADJUSTMENTS = 512
"""Adjustments in one AAE. Photos writes up to about 20."""

# --------------------------------------------------------------------------- Motion Photos

MAX_SEF_ENTRIES = 64
"""Entries of a Samsung SEF directory. Samsung writes 2-10."""

MAX_SEF_DIRECTORY_BYTES = 0x10000
"""A Samsung SEF directory (12 bytes per entry): 64 KB holds 5,000 entries, far past the cap."""

MAX_DIRECTORY_ITEMS = 64
"""Items of a Google Motion Photo Container directory. Phones write 2-4 (primary image,
video, sometimes a gain map or depth map)."""

# --------------------------------------------------------------------------- XMP

MAX_PACKET_BYTES = 2 * 1024 * 1024
"""One XMP packet. Phones write 1-10 KB; editing software up to a few hundred KB (history,
thumbnails); 2 MB leaves room and parses in tens of milliseconds."""

XMP_MAX_DEPTH = 64
"""Element nesting of an XMP packet. Real packets nest under 10 deep."""

XMP_MAX_ELEMENTS = 100_000
"""Elements of one XMP packet. A large real packet has a few thousand."""
