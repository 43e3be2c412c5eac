"""LAFAN1 motions retargeted to the Unitree H1: locating, loading and splitting.

Data layout (Unitree's public "LAFAN1_Retargeting_Dataset" release, ``h1/`` folder):
one CSV per clip, no header, 30 frames per second, 26 float columns per frame:

======== ============================================================ ======
columns  meaning                                                      unit
======== ============================================================ ======
0-2      root (pelvis) position x, y, z, world frame, z up            m
3-6      root orientation quaternion x, y, z, w                       -
7-25     19 joint angles in :data:`envs.model.JOINT_NAMES` order      rad
======== ============================================================ ======

MuJoCo's ``qpos`` uses the quaternion order w, x, y, z; :func:`csv_to_qpos` and
:func:`qpos_to_csv` convert between the two (both shape (T, 26)).

All parsing problems raise :class:`DataError` with a one-line message naming
the file (and the 1-based line number where one applies).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from daps.io import atomic_write

__all__ = [
    "FPS",
    "NUM_COLUMNS",
    "VAL_CLIPS",
    "DataError",
    "default_data_root",
    "resolve_clip_dir",
    "list_clips",
    "split_clips",
    "load_clip_csv",
    "csv_to_qpos",
    "qpos_to_csv",
    "mirror_qpos",
    "MIRROR_SUFFIX",
    "write_clip_csv",
]

#: Frame rate of the clips (frames per second).
FPS: float = 30.0
#: Number of columns of a clip CSV (and of qpos).
NUM_COLUMNS: int = 26
#: Validation clips used by the DAPS authors; the other 36 clips are training clips.
VAL_CLIPS: tuple[str, ...] = ("dance2_subject2", "fight1_subject2", "run2_subject1", "walk2_subject4")

_QUAT_EPS = 1e-6
_DOWNLOAD_HINT = (
    "download Unitree's public \"LAFAN1_Retargeting_Dataset\" release and set "
    "DAPS_LAFAN1_DIR to its root folder (the one containing h1/)"
)


class DataError(ValueError):
    """A data file or folder is missing or malformed (one-line message naming the file)."""


def default_data_root() -> Path:
    """Default data root: ``$DAPS_LAFAN1_DIR`` if set, else ``<repo>/../shared/data/lafan1_h1``.

    ``<repo>`` is the parent of the ``envs`` package folder.
    """
    env = os.environ.get("DAPS_LAFAN1_DIR")
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "lafan1_h1"


def resolve_clip_dir(root: str | os.PathLike | None = None) -> Path:
    """Folder holding the H1 clip CSVs.

    ``root`` may be the release root (containing ``h1/``) or the ``h1/`` folder
    itself; ``None`` means :func:`default_data_root`.  Raises :class:`DataError`
    if the folder is missing or holds no CSV.
    """
    root = default_data_root() if root is None else Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"{root}: LAFAN1-H1 data folder not found; {_DOWNLOAD_HINT}")
    clip_dir = root / "h1" if (root / "h1").is_dir() else root
    if not any(clip_dir.glob("*.csv")):
        raise DataError(f"{clip_dir}: no clip CSV files found; {_DOWNLOAD_HINT}")
    return clip_dir


def list_clips(root: str | os.PathLike | None = None) -> list[str]:
    """Sorted clip names (CSV file stems, e.g. ``walk1_subject1``) under ``root``."""
    return sorted(p.stem for p in resolve_clip_dir(root).glob("*.csv"))


def split_clips(root: str | os.PathLike | None = None) -> tuple[list[str], list[str]]:
    """``(train, val)`` sorted clip names; val = :data:`VAL_CLIPS` (raises if any is missing)."""
    clips = list_clips(root)
    missing = [c for c in VAL_CLIPS if c not in clips]
    if missing:
        raise DataError(f"{resolve_clip_dir(root)}: validation clips missing: {', '.join(missing)}")
    val = [c for c in clips if c in VAL_CLIPS]
    train = [c for c in clips if c not in VAL_CLIPS]
    return train, val


def _scan_for_error(path: Path, text: str) -> DataError | None:
    """Slow line-by-line scan producing the precise error, or None if the file is fine."""
    name = path.name
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split(",")
        if len(fields) != NUM_COLUMNS:
            return DataError(f"{name} line {lineno}: expected {NUM_COLUMNS} columns, got {len(fields)}")
        values = []
        for col, field in enumerate(fields):
            try:
                values.append(float(field))
            except ValueError:
                return DataError(f"{name} line {lineno}: column {col} is not a number: {field.strip()[:40]!r}")
        arr = np.asarray(values)
        if not np.isfinite(arr).all():
            col = int(np.flatnonzero(~np.isfinite(arr))[0])
            return DataError(f"{name} line {lineno}: column {col} is not finite ({fields[col].strip()})")
        if np.linalg.norm(arr[3:7]) < _QUAT_EPS:
            return DataError(f"{name} line {lineno}: root quaternion (columns 3-6) has ~zero norm")
    return None


#: Values no H1 motion at 30 Hz comes near (the LAFAN1-H1 clips stay within 11.3 m of the origin,
#: 0.07-1.25 m high, |joint| <= 3.14 rad, 28 m/s and 23 rad/s between frames): a clip beyond them
#: is refused, naming the line and column, rather than turned into meaningless codes.
PHYSICAL_LIMITS = {
    "root_xy_m": 1000.0,            # |x|, |y| of the root, m
    "root_z_m": (-2.0, 10.0),       # root height, m
    "quaternion_norm": (0.5, 2.0),  # of columns 3-6 (written unit, normalised when read)
    "joint_rad": 2 * np.pi,         # |joint angle|, rad
    "root_speed_m_s": 100.0,        # root x, y, z change between frames x 30, m/s
    "joint_speed_rad_s": 100.0,     # joint angle change between frames x 30, rad/s
}


def _line_of_row(text: str, row: int) -> int:
    """1-based line number of data row `row` (0-based) in a CSV text, skipping the blank and
    comment lines np.loadtxt skips."""
    seen = -1
    for lineno, line in enumerate(text.splitlines(), start=1):
        if line.strip() and not line.lstrip().startswith("#"):
            seen += 1
            if seen == row:
                return lineno
    return row + 1


def _check_physical(path: Path, rows: np.ndarray) -> None:
    """Raise DataError naming the file, line and column of the first value of `rows` (T, 26)
    beyond :data:`PHYSICAL_LIMITS` (in file order)."""
    lim = PHYSICAL_LIMITS
    absval = np.abs(rows)
    value = np.zeros(rows.shape, bool)
    value[:, :2] = absval[:, :2] > lim["root_xy_m"]
    value[:, 2] = (rows[:, 2] < lim["root_z_m"][0]) | (rows[:, 2] > lim["root_z_m"][1])
    qn = np.linalg.norm(rows[:, 3:7], axis=1)
    far = (qn < lim["quaternion_norm"][0]) | (qn > lim["quaternion_norm"][1])
    value[:, 3:7] = far[:, None] & (absval[:, 3:7] == absval[:, 3:7].max(axis=1, keepdims=True))  # its largest part
    value[:, 7:] = absval[:, 7:] > lim["joint_rad"]
    rate = np.zeros(rows.shape)
    rate[1:] = np.abs(np.diff(rows, axis=0)) * FPS
    jump = np.zeros(rows.shape, bool)
    jump[:, :3] = rate[:, :3] > lim["root_speed_m_s"]
    jump[:, 7:] = rate[:, 7:] > lim["joint_speed_rad_s"]
    hits = np.argwhere(value | jump)
    if not len(hits):
        return
    r, c = (int(i) for i in hits[0])
    if value[r, c]:
        reason = ("root position beyond 1 km" if c < 2 else "root height outside -2..10 m" if c == 2
                  else f"root quaternion of norm {qn[r]:.4g}" if c < 7 else "joint angle beyond 2 pi rad")
    else:
        reason = f"{rate[r, c]:.4g} {'m/s' if c < 3 else 'rad/s'} from the line before"
    line = _line_of_row(path.read_text(encoding="utf-8", errors="replace"), r)
    raise DataError(f"{path.name} line {line}: column {c} is {rows[r, c]:.6g}: physically impossible ({reason})")


def load_clip_csv(path: str | os.PathLike, min_frames: int = 1) -> np.ndarray:
    """Load one clip CSV strictly.

    Returns rows of shape (T, 26), float64, in the CSV layout (quaternion x, y, z, w).
    Raises :class:`DataError` (one line, naming the file and line) for a missing
    or empty file, a folder, a wrong column count, a non-number, NaN/inf, a root
    quaternion of ~zero norm, a physically impossible value (:data:`PHYSICAL_LIMITS`:
    positions, angles and their changes between frames), or fewer than ``min_frames`` frames.
    """
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path}: is a folder, not a clip CSV file")
    if not path.is_file():
        raise DataError(f"{path}: clip file not found")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # loadtxt warns on empty input
            rows = np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=2)
        ok = rows.size > 0 and rows.shape[1] == NUM_COLUMNS and bool(np.isfinite(rows).all())
        ok = ok and bool((np.linalg.norm(rows[:, 3:7], axis=1) >= _QUAT_EPS).all())
    except (ValueError, UnicodeDecodeError):
        ok = False
    if not ok:  # slow path: re-scan line by line for a precise message
        text = path.read_text(encoding="utf-8", errors="replace")
        if not text.strip():
            raise DataError(f"{path.name}: file is empty")
        err = _scan_for_error(path, text)
        if err is None:  # should not happen; keep a sane message
            err = DataError(f"{path.name}: could not parse as a {NUM_COLUMNS}-column CSV")
        raise err
    _check_physical(path, rows)
    if rows.shape[0] < min_frames:
        raise DataError(
            f"{path.name}: clip has {rows.shape[0]} frames, need at least {min_frames} (one segment)"
        )
    return rows


def _check_26(a: np.ndarray, what: str) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] != NUM_COLUMNS:
        raise ValueError(f"{what}: expected shape (T, {NUM_COLUMNS}), got {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{what}: contains NaN or inf")
    return a


def csv_to_qpos(rows: np.ndarray) -> np.ndarray:
    """CSV rows (T, 26) -> MuJoCo qpos (T, 26): quaternion x,y,z,w -> w,x,y,z, normalised."""
    rows = _check_26(rows, "csv_to_qpos rows")
    quat = rows[:, [6, 3, 4, 5]]
    norm = np.linalg.norm(quat, axis=1, keepdims=True)
    if (norm < _QUAT_EPS).any():
        raise ValueError(f"csv_to_qpos rows: ~zero-norm quaternion at row {int(np.argmin(norm))}")
    return np.concatenate([rows[:, :3], quat / norm, rows[:, 7:]], axis=1)


def qpos_to_csv(qpos: np.ndarray) -> np.ndarray:
    """MuJoCo qpos (T, 26) -> CSV rows (T, 26): quaternion w,x,y,z -> x,y,z,w, normalised."""
    qpos = _check_26(qpos, "qpos_to_csv qpos")
    quat = qpos[:, 3:7]
    norm = np.linalg.norm(quat, axis=1, keepdims=True)
    if (norm < _QUAT_EPS).any():
        raise ValueError(f"qpos_to_csv qpos: ~zero-norm quaternion at row {int(np.argmin(norm))}")
    quat = quat / norm
    return np.concatenate([qpos[:, :3], quat[:, [1, 2, 3, 0]], qpos[:, 7:]], axis=1)


def _mirror_tables() -> tuple[np.ndarray, np.ndarray]:
    """Joint permutation (left <-> right) and signs (-1 for roll and yaw axes) of the mirror."""
    from envs.model import JOINT_NAMES

    swap = {"left": "right", "right": "left"}
    perm = [JOINT_NAMES.index("_".join([swap.get(n.split("_")[0], n.split("_")[0]), *n.split("_")[1:]])) for n in JOINT_NAMES]
    sign = [-1.0 if ("roll" in n or "yaw" in n or n.startswith("torso")) else 1.0 for n in JOINT_NAMES]
    return np.array(perm), np.array(sign)


#: Name suffix of a clip's left-right mirror image ("walk1_subject1~mirror"), wherever mirrors are made.
MIRROR_SUFFIX = "~mirror"


def mirror_qpos(qpos: np.ndarray) -> np.ndarray:
    """The left-right mirror image of a motion: qpos (T, 26) -> (T, 26), reflected in the
    world x-z plane (y -> -y).

    Root position (x, y, z) -> (x, -y, z); root rotation R -> M R M with M = diag(1, -1, 1),
    i.e. quaternion (w, x, y, z) -> (w, -x, y, -z); left and right joints swap, and the angles
    of joints about x (roll) or z (yaw, the torso) change sign, pitch angles (about y) keep it.
    Valid for the H1, whose left and right joints share their axes and mirror their ranges
    (a test checks the forward kinematics). Used to double the training motions (data
    augmentation). Raises ValueError for a wrong shape or NaN.
    """
    qpos = _check_26(qpos, "mirror_qpos qpos")
    perm, sign = _mirror_tables()
    out = qpos.copy()
    out[:, 1] *= -1
    out[:, [4, 6]] *= -1
    out[:, 7:] = qpos[:, 7:][:, perm] * sign
    return out


SPEED_RANGE = (0.25, 4.0)  # playback speeds `resample_qpos` accepts


def resample_qpos(qpos: np.ndarray, speed: float) -> np.ndarray:
    """The same motion played `speed` times as fast, at the same frame rate: qpos (T, 26) ->
    (T', 26), T' = floor((T - 1) / speed) + 1, frame i taken at time i * speed of the original
    (in frames). Root position and joint angles are interpolated linearly, the root quaternion
    (w, x, y, z) by normalised linear interpolation on the neighbour's hemisphere (frames 1/30 s
    apart turn little). Used to widen the training motions (speed augmentation). Raises
    ValueError for a wrong shape, NaN or a speed outside [0.25, 4].
    """
    qpos = _check_26(qpos, "resample_qpos qpos")
    if not SPEED_RANGE[0] <= speed <= SPEED_RANGE[1]:
        raise ValueError(f"resample_qpos: speed must be in [{SPEED_RANGE[0]:g}, {SPEED_RANGE[1]:g}], got {speed}")
    t = np.arange(int(np.floor((len(qpos) - 1) / speed + 1e-9)) + 1) * speed
    i0 = np.minimum(np.floor(t).astype(int), len(qpos) - 1)
    i1 = np.minimum(i0 + 1, len(qpos) - 1)
    w = (t - i0)[:, None]
    out = (1 - w) * qpos[i0] + w * qpos[i1]
    q0, q1 = qpos[i0, 3:7], qpos[i1, 3:7]
    q1 = np.where(np.sum(q0 * q1, axis=1, keepdims=True) < 0, -q1, q1)
    quat = (1 - w) * q0 + w * q1
    out[:, 3:7] = quat / np.linalg.norm(quat, axis=1, keepdims=True)
    return out


def write_clip_csv(path: str | os.PathLike, rows: np.ndarray) -> Path:
    """Write CSV rows (T, 26) atomically (temp file + os.replace), 6 decimals, no header."""
    rows = _check_26(rows, f"write_clip_csv {Path(path).name}")
    return atomic_write(path, lambda tmp: np.savetxt(tmp, rows, fmt="%.6f", delimiter=","))
