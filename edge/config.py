"""The one typed configuration object, loaded from TOML and validated at start-up.

pydantic does the validation (unknown keys are rejected, every field is described, and its error
locations give us the dotted key that was wrong). A board profile and a site profile are TOML files in
firmware_configs/; ``load_config`` merges the files it is given in order, later files winning.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edge.errors import ConfigError
from edge.vision.matcher import DEFAULT_THRESHOLD as SFACE_PUBLISHED_THRESHOLD
from edge.vision.matcher import FACE_MODELS, SFACE, FaceModel

#: Shipped threshold of the default face model (SFace, cosine); docs/THRESHOLDS.md gives the data and the
#: reasoning.
DEFAULT_MATCH_THRESHOLD = SFACE.threshold

__all__ = ["SFACE_PUBLISHED_THRESHOLD", "EdgeConfig", "load_config"]


CardType = Literal["health_card", "escort_permit", "vaccination_appointment", "staff_card", "delegation"]
AgeBand = Literal["child", "minor", "adult"]
FaceSubject = Literal["guardian", "either", "holder"]
#: Children under 14: the guardian; 14-17: either; adults: only themselves (docs/VACCINATION.md).
DEFAULT_FACE_POLICY: dict[AgeBand, FaceSubject] = {"child": "guardian", "minor": "either", "adult": "holder"}
#: Reasons a staff member may pick for an override (docs/ESCORT.md); a site may narrow the list.
OVERRIDE_REASONS = ("face_not_recognised", "liveness_not_passed", "card_problem", "device_problem",
                    "clinical_need", "emergency")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelsConfig(_Strict):
    dir: Path | None = Field(None, description="Folder of fetched models; default $EDGE_MODEL_DIR or "
                                               "~/.local/share/edge/models.")
    threads: int = Field(2, ge=1, le=16, description="onnxruntime intra-op threads per model session.")
    memory_arena: bool = Field(False, description="Keep onnxruntime's CPU memory arena (slightly faster; the "
                                                  "arena never shrinks, so off on small boards).")


class FaceConfig(_Strict):
    detect_max_side: int = Field(640, ge=160, le=4096, description="Frames are downscaled so the long side "
                                                                   "is at most this many pixels before detection.")
    detect_retry_max_side: int = Field(1600, ge=160, le=8192, description="When a large frame shows no face, "
                                                                         "retry with its long side at most this.")
    score_threshold: float = Field(0.8, gt=0, lt=1, description="YuNet face score threshold (0..1).")
    nms_threshold: float = Field(0.3, gt=0, lt=1, description="IoU above which overlapping boxes are merged.")
    model: Literal["sface", "sface+dlib"] = Field(
        "sface", description="Face model of the site's templates: SFace alone, or SFace fused with dlib's ResNet "
                             "(docs/THRESHOLDS.md). Changing it needs every template enrolled again.")
    match_threshold: float | None = Field(None, ge=-1, le=1,
                                          description="Score at or above which two faces match; default: the "
                                                      "face model's shipped threshold (sface 0.52, sface+dlib "
                                                      "0.49).")
    flip_fusion: bool = Field(False, description="Also embed the mirrored crop and fuse (2x embed cost).")
    min_eye_distance_px: float = Field(20.0, ge=0, description="Minimum distance between eye centres, pixels.")
    max_yaw_deg: float = Field(35.0, ge=0, le=90, description="Largest head yaw accepted, degrees.")
    max_pitch_deg: float = Field(30.0, ge=0, le=90, description="Largest head pitch accepted, degrees.")
    min_sharpness: float = Field(15.0, ge=0, description="Minimum variance of the Laplacian of the crop.")
    min_brightness: float = Field(40.0, ge=0, le=255, description="Minimum mean grey level of the crop.")
    max_brightness: float = Field(220.0, ge=0, le=255, description="Maximum mean grey level of the crop.")

    @property
    def face_model(self) -> FaceModel:
        return FACE_MODELS[self.model]

    @property
    def threshold(self) -> float:
        """The match threshold in force: the configured one, else the face model's."""
        return self.face_model.threshold if self.match_threshold is None else self.match_threshold


class ImageConfig(_Strict):
    max_pixels: int = Field(40_000_000, ge=1, description="Images above this many pixels are refused before "
                                                         "decoding.")


class CardConfig(_Strict):
    clock_skew_s: int = Field(300, ge=0, le=3600, description="Tolerance on card iat/nbf/exp, seconds.")
    accepted_types: tuple[CardType, ...] = Field(("health_card", "escort_permit", "vaccination_appointment"),
                                                 description="Card types this site accepts.")
    trust_list: Path | None = Field(None, description="JSON trust list of issuer keys (kid -> keys).")
    revocations: Path | None = Field(None, description="JSON revocation list (versioned truncated hashes).")


class QRConfig(_Strict):
    budget_ms: float = Field(150.0, gt=0, description="Time budget for preprocessing retries per frame, ms.")


class SiteConfig(_Strict):
    id: str = Field("demo-site", description="Site id that card scopes must name ('*' accepts any site).")
    gate_id: str = Field("gate-1", description="This gate's id, written into tokens.")
    require_challenge: bool = Field(True, description="Require the randomized head-turn challenge; natural "
                                                      "movement alone does not defeat screen replays.")
    challenge_retries: int = Field(1, ge=0, le=2, description="Further challenges in one session after a slow, "
                                                              "small, wrong-way or pivot-less answer (never after "
                                                              "a planar one); each failed answer counts towards "
                                                              "max_failures.")
    card_timeout_s: float = Field(4.0, gt=0, description="How long to look for a card QR code, seconds.")
    liveness_frames: int = Field(45, ge=8, le=300, description="Frames in the liveness window.")
    session_budget_s: float = Field(12.0, gt=0, description="Whole-session time budget, seconds.")
    max_failures: int = Field(5, ge=1, description="Failed face/liveness sessions before a cool-down.")
    failure_window_s: float = Field(120.0, gt=0, description="Window in which failures are counted, seconds.")
    cooldown_s: float = Field(60.0, ge=0, description="Cool-down after too many failures, seconds.")
    wards: tuple[str, ...] = Field((), description="Wards this gate serves: an escort permit for another ward "
                                                   "is refused (empty: any ward of the site).")
    entries_per_day: int | None = Field(None, ge=1, description="Entries one permit may make in 24 hours "
                                                               "(the gate's own records; unset: no limit).")
    min_entry_interval_s: float | None = Field(None, gt=0, description="Seconds before the same permit may "
                                                                       "enter again (unset: no limit).")
    override_reasons: tuple[str, ...] = Field(OVERRIDE_REASONS, description="Reasons staff may give for an "
                                                                            "override.")
    overrides_per_staff_per_hour: int = Field(10, ge=0, description="Overrides one staff member may make in an "
                                                                  "hour.")
    overrides_per_gate_per_hour: int = Field(30, ge=0, description="Overrides this gate accepts in an hour.")
    face_policy: dict[AgeBand, FaceSubject] = Field(
        default_factory=lambda: dict(DEFAULT_FACE_POLICY),
        description="Per age band on the card, whose face is verified: the guardian's (with a delegation), "
                    "either, or only the holder's. Cards without an age band: the holder's.")
    record_window_s: float = Field(900.0, gt=0, description="A vaccination record must follow its ALLOW within "
                                                           "this many seconds.")


class LivenessConfig(_Strict):
    max_moire: float = Field(60.0, gt=0, description="Spectral peak ratio above which a screen is assumed.")
    max_glare: float = Field(0.35, gt=0, le=1, description="Saturated share of a face tile that means glare.")
    max_bezel: float = Field(0.55, gt=0, le=1, description="Opposite-edge strength that means a bezel/paper edge.")
    min_pad_live: float = Field(0.5, ge=0, le=1, description="PAD model live probability below which to deny.")
    min_planarity: float = Field(0.15, gt=0, description="Nose residual (eye distances) that confirms depth.")
    min_nose_depth: float = Field(0.3, gt=0, description="Implied nose depth (eye distances) for the challenge.")
    min_turn_deg: float = Field(4.0, gt=0, le=30, description="Apparent yaw (degrees) from the pose at the prompt "
                                                              "that answers the challenge.")
    min_eye_travel: float = Field(0.5, ge=0, description="Sideways eye travel over sin(turn), eye distances: a "
                                                         "head pivots at the neck, a held sheet about its middle.")
    min_eye_distance_px: float = Field(18.0, gt=0, description="Smaller faces are failure-to-acquire, pixels.")
    pad_models: Path | None = Field(None, description="Folder with the MiniFASNet ONNX files (optional).")


class DeviceConfig(_Strict):
    id: str = Field("edge-dev-1", description="Device id (token issuer).")
    data_dir: Path = Field(Path("/var/lib/edge"), description="Keys, template store and outbox live here.")


ControlValue = bool | int | float | tuple[float, ...]


class CameraConfig(_Strict):
    source: str = Field("v4l2:0", description="'v4l2:N' or 'v4l2:/dev/videoN', 'picamera2', or 'replay:PATH' "
                                             "(video or folder).")
    width: int = Field(640, ge=160, le=4096, description="Capture width, pixels.")
    height: int = Field(480, ge=120, le=3072, description="Capture height, pixels.")
    fps: float = Field(30.0, gt=0, le=120, description="Capture rate, frames per second.")
    rotation: Literal[0, 180] = Field(0, description="Mounting rotation, degrees (180 for an upside-down "
                                                     "module).")
    hflip: bool = Field(False, description="Mirror the image left-right.")
    vflip: bool = Field(False, description="Mirror the image top-bottom.")
    controls: dict[str, ControlValue] = Field(default_factory=dict, description="libcamera controls applied "
                                              "at start (picamera2 only), e.g. AeMeteringMode, AfMode.")
    buffer_frames: int = Field(8, ge=2, le=64, description="Frames kept in the ring buffer between the camera "
                                                         "owner and sessions.")
    frame_timeout_s: float = Field(2.0, gt=0, le=30, description="Longest wait for one frame, seconds.")
    stall_s: float = Field(3.0, gt=0, le=60, description="No frame for this long turns health NOT_SERVING, s.")
    reopen_max_s: float = Field(30.0, gt=0, description="Longest back-off between attempts to reopen a failed "
                                                       "camera, seconds.")
    helper_python: str | None = Field(None, description="Run the camera in a helper process on this Python "
                                                         "(Raspberry Pi OS: /usr/bin/python3, whose apt picamera2 "
                                                         "the venv cannot import); frames arrive in shared memory.")
    wait_s: float = Field(2.0, ge=0, description="How long a session waits for the camera before refusing.")
    replay_realtime: bool = Field(False, description="Pace replay sources to their frame rate, like a camera.")


class ServerConfig(_Strict):
    address: str | None = Field("127.0.0.1:50051", description="host:port of the mutual-TLS listener (port 0 "
                                                              "picks a free one); unset: unix socket only.")
    tls_dir: Path | None = Field(None, description="Folder with ca.pem (the CA that signs callers' "
                                                   "certificates) and the daemon's <server_cert>.pem/.key.")
    server_cert: str = Field("edge-device", description="Base name of the daemon's certificate and key in "
                                                        "tls_dir.")
    plaintext: bool = Field(False, description="Serve address WITHOUT TLS and without caller roles: local "
                                               "development only, never on a ward.")
    unix_socket: Path | None = Field(None, description="Also listen on this unix socket (mode 0660) for a "
                                                       "controller on the same board.")
    local_role: Literal["controller", "operator"] = Field("controller", description="Role of callers on the "
                                                                                    "unix socket.")
    max_workers: int = Field(8, ge=2, le=64, description="gRPC worker threads.")
    verify_concurrency: int = Field(2, ge=1, le=16, description="Verify calls admitted at once (one holds the "
                                                                "camera, the rest wait up to camera.wait_s).")
    other_concurrency: int = Field(8, ge=1, le=64, description="Concurrent calls admitted per other method.")
    caller_sessions_per_min: float = Field(30.0, gt=0, description="Verification sessions one caller may start "
                                                                  "per minute (token bucket, burst of 5).")
    stream_idle_s: float = Field(5.0, gt=0, le=60, description="A VerifySession stream that sends no `start` "
                                                              "within this many seconds is closed.")
    grace_s: float = Field(10.0, ge=0, description="Seconds in-flight sessions get to finish on SIGTERM.")
    reflection: bool = Field(True, description="Serve gRPC server reflection.")
    metrics_address: str | None = Field(None, description="host:port for Prometheus metrics (off when unset).")
    watchdog_s: float | None = Field(None, gt=0, description="systemd watchdog period; default: from "
                                                             "$WATCHDOG_USEC when systemd sets it.")
    trim_after_session: bool = Field(True, description="Return freed heap to the system after each session "
                                                       "(glibc malloc_trim): the frames of a session are tens of MB.")


class RegistryConfig(_Strict):
    address: str | None = Field(None, description="Registry host:port; unset = standalone (local files only).")
    tls_dir: Path | None = Field(None, description="Folder with ca.pem and <device id>.pem/.key for mutual TLS.")
    server_name: str = Field("registry", description="Name in the registry's certificate.")
    plaintext: bool = Field(False, description="No TLS: local development only, never on a ward.")
    public_key: str | None = Field(None, description="Registry X25519 public key (hex) that enrollment seals "
                                                     "templates to.")
    sync_interval_s: float = Field(60.0, gt=0, description="Seconds between trust/revocation/template syncs.")
    delivery_idle_s: float = Field(1.0, gt=0, description="Seconds between delivery rounds when idle.")
    staleness_s: float = Field(86400.0, gt=0, description="Cached registry data older than this is stale.")
    stale_policy: Literal["deny", "allow_flagged"] = Field("deny", description="What stale data means: deny, "
                                                           "or allow with a flag in the token.")
    outbox_max_rows: int = Field(100_000, ge=1, description="Undelivered tokens kept before refusing sessions.")
    delivery_batch: int = Field(100, ge=1, le=500, description="Tokens per delivery call.")
    delivery_max_per_s: float = Field(50.0, gt=0, description="Drain rate cap after an outage, tokens/s.")
    delivery_max_backoff_s: float = Field(60.0, gt=0, description="Longest wait between delivery retries, s.")


class TokenConfig(_Strict):
    audience: str = Field("registry", description="Token audience (aud).")
    lifetime_s: int = Field(300, ge=10, le=86400, description="Token lifetime after iat, seconds.")
    clock_floor: int = Field(1_767_225_600, description="Refuse to sign while the clock reads earlier (unix s).")
    require_time_sync: bool = Field(False, description="Also require the kernel to report the clock "
                                                       "synchronised (timesyncd, chrony or ntpd).")


class EdgeConfig(_Strict):
    models: ModelsConfig = Field(default_factory=ModelsConfig)
    face: FaceConfig = Field(default_factory=FaceConfig)
    image: ImageConfig = Field(default_factory=ImageConfig)
    card: CardConfig = Field(default_factory=CardConfig)
    qr: QRConfig = Field(default_factory=QRConfig)
    site: SiteConfig = Field(default_factory=SiteConfig)
    liveness: LivenessConfig = Field(default_factory=LivenessConfig)
    device: DeviceConfig = Field(default_factory=DeviceConfig)
    camera: CameraConfig = Field(default_factory=CameraConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    token: TokenConfig = Field(default_factory=TokenConfig)
    registry: RegistryConfig = Field(default_factory=RegistryConfig)


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def config_from_dict(raw: dict[str, Any], source: str = "config") -> EdgeConfig:
    try:
        return EdgeConfig.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            key = ".".join(str(part) for part in error["loc"])
            problems.append(f"{key}: {error['msg']}")
        first = exc.errors()[0]
        raise ConfigError(f"{source}: " + "; ".join(problems),
                          key=".".join(str(p) for p in first["loc"])) from None


def load_config(*paths: str | Path) -> EdgeConfig:
    """Load and merge TOML files (later wins) into a validated EdgeConfig; no paths gives the defaults."""
    raw: dict[str, Any] = {}
    for path in paths:
        path = Path(path)
        try:
            raw = _merge(raw, tomllib.loads(path.read_text()))
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    return config_from_dict(raw, ", ".join(str(p) for p in paths) or "defaults")
