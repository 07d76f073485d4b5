"""The one typed configuration object, loaded from TOML and validated at start-up.

msgspec does the validation: unknown keys are rejected, every field carries its bounds and description in
its annotation, and the error names the dotted key that was wrong. (It replaced pydantic, which did the
same job but took ~75 ms to import and build the models: most of a one-shot command's start-up.)
A board profile and a site profile are TOML files in firmware_configs/; ``load_config`` merges the files
it is given in order, later files winning.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct, field

from edge.errors import ConfigError
from edge.gate.vaccination import CVX, DISPLAY, VACCINES, site_zone
from edge.vision.matcher import DEFAULT_THRESHOLD as SFACE_PUBLISHED_THRESHOLD
from edge.vision.matcher import FACE_MODELS, SFACE, FaceModel

#: Shipped threshold of the default face model (SFace, cosine); docs/THRESHOLDS.md gives the data and the
#: reasoning.
DEFAULT_MATCH_THRESHOLD = SFACE.threshold

__all__ = ["SFACE_PUBLISHED_THRESHOLD", "EdgeConfig", "config_to_dict", "load_config"]


CardType = Literal["health_card", "escort_permit", "vaccination_appointment", "staff_card", "delegation"]
AgeBand = Literal["child", "minor", "adult"]
FaceSubject = Literal["guardian", "either", "holder"]
#: Children under 14: the guardian; 14-17: either; adults: only themselves (docs/VACCINATION.md).
DEFAULT_FACE_POLICY: dict[AgeBand, FaceSubject] = {"child": "guardian", "minor": "either", "adult": "holder"}
#: Reasons a staff member may pick for an override (docs/ESCORT.md); a site may narrow the list.
OVERRIDE_REASONS = ("face_not_recognised", "liveness_not_passed", "card_problem", "device_problem",
                    "clinical_need", "emergency")


class _Strict(Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """A config section: immutable, and a key it does not know is an error, not a silently ignored typo.
    (Each section repeats frozen=True: mypy does not see it inherited.)"""


class ModelsConfig(_Strict, frozen=True):
    dir: Annotated[Path | None, Meta(description=(
        "Folder of fetched models; default $EDGE_MODEL_DIR or ~/.local/share/edge/models."))] = None
    threads: Annotated[int, Meta(ge=1, le=16, description=(
        "onnxruntime intra-op threads per model session; batch commands (match, calibrate) embed this many "
        "images at once instead, each model call on one thread."))] = 2
    memory_arena: Annotated[bool, Meta(description=(
        "Keep onnxruntime's CPU memory arena and memory patterns for every model (slightly faster; the arena "
        "never shrinks, so off on small boards). The detector's first pass keeps an arena either way: its "
        "input is never larger than face.detect_max_side, so that arena stops growing."))] = False


class FaceConfig(_Strict, frozen=True):
    detect_max_side: Annotated[int, Meta(ge=160, le=4096, description=(
        "Frames are downscaled so the long side is at most this many pixels before detection."))] = 640
    detect_retry_max_side: Annotated[int, Meta(ge=160, le=8192, description=(
        "When a large frame shows no face, retry with its long side at most this."))] = 1600
    score_threshold: Annotated[float, Meta(gt=0, lt=1, description="YuNet face score threshold (0..1).")] = 0.8
    nms_threshold: Annotated[float, Meta(gt=0, lt=1, description="IoU above which overlapping boxes are merged.")] = 0.3
    model: Annotated[Literal["sface", "sface+dlib"], Meta(description=(
        "Face model of the site's templates: SFace alone, or SFace fused with dlib's ResNet "
        "(docs/THRESHOLDS.md). Cards enrolled on the other model are still read, on SFace's part of their "
        "template, so switching needs no re-enrolment."))] = "sface"
    match_threshold: Annotated[float, Meta(ge=-1, le=1, description=(
        "Score at or above which two faces match; default: the face model's shipped threshold "
        "(sface 0.52, sface+dlib 0.49)."))] | None = None
    sface_match_threshold: Annotated[float, Meta(ge=-1, le=1, description=(
        "With model sface+dlib: the threshold for cards enrolled on SFace alone, scored on SFace's part of "
        "the template; default SFace's shipped 0.52 (a site that calibrated SFace puts its own here)."))] | None = None
    flip_fusion: Annotated[bool, Meta(description="Also embed the mirrored crop and fuse (2x embed cost).")] = False
    min_eye_distance_px: Annotated[float, Meta(ge=0, description=(
        "Minimum distance between eye centres, pixels."))] = 20.0
    max_yaw_deg: Annotated[float, Meta(ge=0, le=90, description="Largest head yaw accepted, degrees.")] = 35.0
    max_pitch_deg: Annotated[float, Meta(ge=0, le=90, description="Largest head pitch accepted, degrees.")] = 30.0
    min_sharpness: Annotated[float, Meta(ge=0, description="Minimum variance of the Laplacian of the crop.")] = 15.0
    min_brightness: Annotated[float, Meta(ge=0, le=255, description="Minimum mean grey level of the crop.")] = 40.0
    max_brightness: Annotated[float, Meta(ge=0, le=255, description="Maximum mean grey level of the crop.")] = 220.0

    @property
    def face_model(self) -> FaceModel:
        return FACE_MODELS[self.model]

    @property
    def threshold(self) -> float:
        """The match threshold in force: the configured one, else the face model's."""
        return self.face_model.threshold if self.match_threshold is None else self.match_threshold


class ImageConfig(_Strict, frozen=True):
    max_pixels: Annotated[int, Meta(ge=1, description=(
        "Images above this many pixels are refused before decoding."))] = 40_000_000


class CardConfig(_Strict, frozen=True):
    clock_skew_s: Annotated[int, Meta(ge=0, le=3600, description="Tolerance on card iat/nbf/exp, seconds.")] = 300
    accepted_types: Annotated[tuple[CardType, ...], Meta(description=(
        "Card types this site accepts."))] = ("health_card", "escort_permit", "vaccination_appointment")
    trust_list: Annotated[Path | None, Meta(description="JSON trust list of issuer keys (kid -> keys).")] = None
    revocations: Annotated[Path | None, Meta(description="JSON revocation list (versioned truncated hashes).")] = None


class QRConfig(_Strict, frozen=True):
    budget_ms: Annotated[float, Meta(gt=0, description="Time budget for preprocessing retries per frame, ms.")] = 150.0


class SiteConfig(_Strict, frozen=True):
    id: Annotated[str, Meta(description="Site id that card scopes must name ('*' accepts any site).")] = "demo-site"
    gate_id: Annotated[str, Meta(description="This gate's id, written into tokens.")] = "gate-1"
    require_challenge: Annotated[bool, Meta(description=(
        "Require the randomized head-turn challenge; natural movement alone does not defeat screen "
        "replays."))] = True
    challenge_retries: Annotated[int, Meta(ge=0, le=2, description=(
        "Further challenges in one session after a slow, small, wrong-way or pivot-less answer (never after a "
        "planar one); each failed answer counts towards max_failures."))] = 1
    card_timeout_s: Annotated[float, Meta(gt=0, description="How long to look for a card QR code, seconds.")] = 4.0
    liveness_frames: Annotated[int, Meta(ge=8, le=300, description="Frames in the liveness window.")] = 45
    session_budget_s: Annotated[float, Meta(gt=0, description=(
        "Whole-session time budget, seconds (room for the card, every challenge window and the settle "
        "before each retry)."))] = 14.0
    max_failures: Annotated[int, Meta(ge=1, description="Failed face/liveness sessions before a cool-down.")] = 5
    failure_window_s: Annotated[float, Meta(gt=0, description="Window in which failures are counted, seconds.")] = 120.0
    cooldown_s: Annotated[float, Meta(ge=0, description="Cool-down after too many failures, seconds.")] = 60.0
    wards: Annotated[tuple[str, ...], Meta(description=(
        "Wards this gate serves: an escort permit for another ward is refused (empty: any ward of the site)."))] = ()
    entries_per_day: Annotated[int, Meta(ge=1, description=(
        "Entries one permit may make in 24 hours (the gate's own records; unset: no limit)."))] | None = None
    min_entry_interval_s: Annotated[float, Meta(gt=0, description=(
        "Seconds before the same permit may enter again (unset: no limit)."))] | None = None
    override_reasons: Annotated[tuple[str, ...], Meta(description=(
        "Reasons staff may give for an override."))] = OVERRIDE_REASONS
    overrides_per_staff_per_hour: Annotated[int, Meta(ge=0, description=(
        "Overrides one staff member may make in an hour."))] = 10
    overrides_per_gate_per_hour: Annotated[int, Meta(ge=0, description="Overrides this gate accepts in an hour.")] = 30
    face_policy: Annotated[dict[AgeBand, FaceSubject], Meta(description=(
        "Per age band on the card, whose face is "
        "verified: the guardian's (with a delegation), "
        "either, or only the holder's. Cards without "
        "an age band: the holder's."))] = field(default_factory=lambda: dict(DEFAULT_FACE_POLICY))
    record_window_s: Annotated[float, Meta(gt=0, description=(
        "A vaccination record must follow its ALLOW within this many seconds."))] = 900.0
    vaccines: Annotated[dict[Annotated[str, Meta(pattern=CVX.pattern)], Annotated[str, Meta(pattern=DISPLAY.pattern)]],
                        Meta(description=(
        "Vaccines this station records: CVX code -> name shown in the record (CDC's codes; default: a "
        "starting list in edge/gate/vaccination.py). A site giving others lists them all."))] = field(
        default_factory=lambda: dict(VACCINES))
    timezone: Annotated[str, Meta(description=(
        "The site's IANA time zone (e.g. Europe/Berlin): the calendar day of a vaccination, which a lot's "
        "expiry date is compared with."))] = "UTC"


class LivenessConfig(_Strict, frozen=True):
    max_moire: Annotated[float, Meta(gt=0, description="Spectral peak ratio above which a screen is assumed.")] = 60.0
    max_glare: Annotated[float, Meta(gt=0, le=1, description="Saturated share of a face tile that means glare.")] = 0.35
    max_bezel: Annotated[float, Meta(gt=0, le=1, description=(
        "Opposite-edge strength that means a bezel/paper edge."))] = 0.55
    min_pad_live: Annotated[float, Meta(ge=0, le=1, description=(
        "PAD model live probability below which to deny."))] = 0.5
    min_planarity: Annotated[float, Meta(gt=0, description="Nose residual (eye distances) that confirms depth.")] = 0.15
    min_nose_depth: Annotated[float, Meta(gt=0, description=(
        "Implied nose depth (eye distances) for the challenge."))] = 0.3
    min_turn_deg: Annotated[float, Meta(gt=0, le=30, description=(
        "Apparent yaw (degrees) from the pose at the prompt that answers the challenge."))] = 4.0
    min_eye_travel: Annotated[float, Meta(ge=0, description=(
        "Sideways eye travel over sin(turn), eye distances: a head pivots at the neck, a held sheet about "
        "its middle."))] = 0.5
    min_eye_distance_px: Annotated[float, Meta(gt=0, description=(
        "Smaller faces are failure-to-acquire, pixels."))] = 18.0
    pad_models: Annotated[Path | None, Meta(description="Folder with the MiniFASNet ONNX files (optional).")] = None


#: A device id, as the registry registers it; also the file name of a certificate in a CA or TLS folder.
DEVICE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


class DeviceConfig(_Strict, frozen=True):
    id: Annotated[str, Meta(pattern=DEVICE_ID_PATTERN, description=(
        "Device id (token issuer): 1-64 of A-Z a-z 0-9 . _ -, as the registry registers it; also the name "
        "of its certificate files in registry.tls_dir."))] = "edge-dev-1"
    data_dir: Annotated[Path, Meta(description="Keys, template store and outbox live here.")] = Path("/var/lib/edge")
    keep_unclaimed_templates_days: Annotated[float, Meta(gt=0, description=(
        "Days a face template enrolled on this device is kept before its card is first matched; once it is, "
        "the template goes when the card ends. Covers cards never issued and faces the registry would not "
        "keep (a child's); raise it where cards are issued for longer than a year and first used late."))] = 400.0


ControlValue = bool | int | float | tuple[float, ...]


class CameraConfig(_Strict, frozen=True):
    source: Annotated[str, Meta(description=(
        "'v4l2:N' or 'v4l2:/dev/videoN', 'picamera2', or 'replay:PATH' (video or folder)."))] = "v4l2:0"
    width: Annotated[int, Meta(ge=160, le=4096, description="Capture width, pixels.")] = 640
    height: Annotated[int, Meta(ge=120, le=3072, description="Capture height, pixels.")] = 480
    fps: Annotated[float, Meta(gt=0, le=120, description="Capture rate, frames per second.")] = 30.0
    rotation: Annotated[Literal[0, 180], Meta(description=(
        "Mounting rotation, degrees (180 for an upside-down module)."))] = 0
    hflip: Annotated[bool, Meta(description="Mirror the image left-right.")] = False
    vflip: Annotated[bool, Meta(description="Mirror the image top-bottom.")] = False
    controls: Annotated[dict[str, ControlValue], Meta(description=(
        "libcamera controls applied at start (picamera2 only), e.g. AeMeteringMode, "
        "AfMode."))] = field(default_factory=dict)
    buffer_frames: Annotated[int, Meta(ge=2, le=64, description=(
        "Frames kept in the ring buffer between the camera owner and sessions (a session always takes the "
        "newest: one slower than the camera skips frames rather than falling behind the person)."))] = 8
    frame_timeout_s: Annotated[float, Meta(gt=0, le=30, description="Longest wait for one frame, seconds.")] = 2.0
    stall_s: Annotated[float, Meta(gt=0, le=60, description=(
        "No frame for this long turns health NOT_SERVING, s."))] = 3.0
    reopen_max_s: Annotated[float, Meta(gt=0, description=(
        "Longest back-off between attempts to reopen a failed camera, seconds."))] = 30.0
    helper_python: Annotated[str | None, Meta(description=(
        "Run the camera in a helper process on this Python (Raspberry Pi OS: /usr/bin/python3, whose apt "
        "picamera2 the venv cannot import); frames arrive in shared memory."))] = None
    wait_s: Annotated[float, Meta(ge=0, description="How long a session waits for the camera before refusing.")] = 2.0
    replay_realtime: Annotated[bool, Meta(description=(
        "Pace replay sources to their frame rate, like a camera."))] = False


class ServerConfig(_Strict, frozen=True):
    address: Annotated[str | None, Meta(description=(
        "host:port of the mutual-TLS listener (port 0 picks a free one); unset: unix socket "
        "only."))] = "127.0.0.1:50051"
    tls_dir: Annotated[Path | None, Meta(description=(
        "Folder with ca.pem (the CA that signs callers' certificates) and the daemon's "
        "<server_cert>.pem/.key."))] = None
    server_cert: Annotated[str, Meta(description=(
        "Base name of the daemon's certificate and key in tls_dir."))] = "edge-device"
    plaintext: Annotated[bool, Meta(description=(
        "Serve address WITHOUT TLS and without caller roles: local development only, never on a ward."))] = False
    unix_socket: Annotated[Path | None, Meta(description=(
        "Also listen on this unix socket (mode 0660) for a controller on the same board."))] = None
    local_role: Annotated[Literal["controller", "operator"], Meta(description=(
        "Role of callers on the unix socket."))] = "controller"
    max_workers: Annotated[int, Meta(ge=2, le=64, description="gRPC worker threads.")] = 8
    verify_concurrency: Annotated[int, Meta(ge=1, le=16, description=(
        "Verify calls admitted at once (one holds the camera, the rest wait up to camera.wait_s)."))] = 2
    other_concurrency: Annotated[int, Meta(ge=1, le=64, description="Concurrent calls admitted per other method.")] = 8
    caller_sessions_per_min: Annotated[float, Meta(gt=0, description=(
        "Verification sessions one caller may start per minute (token bucket, burst of 5)."))] = 30.0
    stream_idle_s: Annotated[float, Meta(gt=0, le=60, description=(
        "A VerifySession stream that sends no `start` within this many seconds is closed."))] = 5.0
    grace_s: Annotated[float, Meta(ge=0, description="Seconds in-flight sessions get to finish on SIGTERM.")] = 10.0
    reflection: Annotated[bool, Meta(description="Serve gRPC server reflection.")] = True
    metrics_address: Annotated[str | None, Meta(description=(
        "host:port for Prometheus metrics (off when unset)."))] = None
    watchdog_s: Annotated[float, Meta(gt=0, description=(
        "systemd watchdog period; default: from $WATCHDOG_USEC when systemd sets it."))] | None = None
    trim_after_session: Annotated[bool, Meta(description=(
        "Return freed heap to the system after each session (glibc malloc_trim): the frames of a session "
        "are tens of MB."))] = True


class RegistryConfig(_Strict, frozen=True):
    address: Annotated[str | None, Meta(description=(
        "Registry host:port; unset = standalone (local files only)."))] = None
    tls_dir: Annotated[Path | None, Meta(description=(
        "Folder with ca.pem and <device id>.pem/.key for mutual TLS."))] = None
    server_name: Annotated[str, Meta(description="Name in the registry's certificate.")] = "registry"
    plaintext: Annotated[bool, Meta(description="No TLS: local development only, never on a ward.")] = False
    public_key: Annotated[str | None, Meta(description=(
        "Registry X25519 public key (hex) that enrollment seals templates to."))] = None
    sync_interval_s: Annotated[float, Meta(gt=0, description="Seconds between trust/revocation/template syncs.")] = 60.0
    delivery_idle_s: Annotated[float, Meta(gt=0, description="Seconds between delivery rounds when idle.")] = 1.0
    staleness_s: Annotated[float, Meta(gt=0, description="Cached registry data older than this is stale.")] = 86400.0
    stale_policy: Annotated[Literal["deny", "allow_flagged"], Meta(description=(
        "What stale data means: deny, or allow with a flag in the token."))] = "deny"
    outbox_max_rows: Annotated[int, Meta(ge=1, description=(
        "Undelivered tokens kept before refusing sessions."))] = 100_000
    delivery_batch: Annotated[int, Meta(ge=1, le=500, description="Tokens per delivery call.")] = 100
    delivery_max_per_s: Annotated[float, Meta(gt=0, description="Drain rate cap after an outage, tokens/s.")] = 50.0
    delivery_max_backoff_s: Annotated[float, Meta(gt=0, description="Longest wait between delivery retries, s.")] = 60.0
    keep_delivered_days: Annotated[float, Meta(gt=0, description=(
        "Days a token stays in the outbox after the registry stored it; then it is deleted with the audit "
        "entries before the oldest token kept (the chain is anchored), so a board's storage does not grow and "
        "it holds no history of passages older than this."))] = 30.0
    keep_rejected_days: Annotated[float, Meta(gt=0, description=(
        "Days a token the registry refused for good stays in the outbox (DeviceInfo.outbox_rejected counts "
        "them, the log says why), counted from its session. A token kept holds the audit log from its entry "
        "on, so one refusal kept for good kept a history of every later passage."))] = 90.0


class TokenConfig(_Strict, frozen=True):
    audience: Annotated[str, Meta(description="Token audience (aud).")] = "registry"
    lifetime_s: Annotated[int, Meta(ge=10, le=86400, description="Token lifetime after iat, seconds.")] = 300
    clock_floor: Annotated[int, Meta(description=(
        "Refuse to sign while the clock reads earlier (unix s)."))] = 1_767_225_600
    require_time_sync: Annotated[bool, Meta(description=(
        "Also require the kernel to report the clock synchronised (timesyncd, chrony or ntpd)."))] = False


class EdgeConfig(_Strict, frozen=True):
    models: ModelsConfig = field(default_factory=ModelsConfig)
    face: FaceConfig = field(default_factory=FaceConfig)
    image: ImageConfig = field(default_factory=ImageConfig)
    card: CardConfig = field(default_factory=CardConfig)
    qr: QRConfig = field(default_factory=QRConfig)
    site: SiteConfig = field(default_factory=SiteConfig)
    liveness: LivenessConfig = field(default_factory=LivenessConfig)
    device: DeviceConfig = field(default_factory=DeviceConfig)
    camera: CameraConfig = field(default_factory=CameraConfig)
    server: ServerConfig = field(default_factory=ServerConfig)
    token: TokenConfig = field(default_factory=TokenConfig)
    registry: RegistryConfig = field(default_factory=RegistryConfig)


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _decode_path(kind: type, value: Any) -> Any:
    """msgspec has no pathlib support: a TOML string becomes a Path, anything else is a typed error."""
    if kind is Path:
        if not isinstance(value, str):
            raise TypeError(f"Expected a path (a string), got `{type(value).__name__}`")
        return Path(value)
    raise NotImplementedError(kind)


def _error_key(message: str) -> str:
    """The dotted key a msgspec error is about, from the location it appends ("... - at `$.face.model`");
    an unknown key is named by the message itself ("Object contains unknown field `x`")."""
    where = ""
    if " - at `$" in message:
        where = message.rsplit(" - at `$", 1)[1].split("`", 1)[0].lstrip(".")
    elif " in `$" in message:  # a bad dictionary key: "... - at `key` in `$.site.face_policy`"
        where = message.rsplit(" in `$", 1)[1].split("`", 1)[0].lstrip(".")
    if message.startswith("Object contains unknown field `"):
        unknown = message.split("`", 2)[1]
        where = f"{where}.{unknown}" if where else unknown
    return where


def config_from_dict(raw: dict[str, Any], source: str = "config") -> EdgeConfig:
    try:
        config = msgspec.convert(raw, EdgeConfig, dec_hook=_decode_path)
    except msgspec.ValidationError as exc:
        message = str(exc)
        key = _error_key(message)
        reason = message.split(" - at ", 1)[0]
        if key:
            raise ConfigError(f"{source}: {key}: {reason}", key=key) from None
        raise ConfigError(f"{source}: {reason}") from None
    try:
        site_zone(config.site.timezone)
    except ValueError as exc:
        raise ConfigError(f"{source}: site.timezone: {exc}", key="site.timezone") from None
    return config


def config_to_dict(config: EdgeConfig) -> dict[str, Any]:
    """The config as plain JSON-able values (paths as strings), e.g. for a device's status report."""
    return msgspec.to_builtins(config, enc_hook=str)


def load_config(*paths: str | Path) -> EdgeConfig:
    """Load and merge TOML files (later wins) into a validated EdgeConfig; no paths gives the defaults."""
    raw: dict[str, Any] = {}
    for path in paths:
        path = Path(path)
        try:  # utf-8-sig: a file saved by Windows' Notepad starts with a byte order mark
            raw = _merge(raw, tomllib.loads(path.read_text(encoding="utf-8-sig")))
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path}") from None
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read the config file ({exc.strerror})") from exc
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); TOML files are UTF-8") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    return config_from_dict(raw, ", ".join(str(p) for p in paths) or "defaults")
