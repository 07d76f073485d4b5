from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Decision(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DECISION_UNSPECIFIED: _ClassVar[Decision]
    ALLOW: _ClassVar[Decision]
    DENY: _ClassVar[Decision]
    RETRY: _ClassVar[Decision]

class ReasonCode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REASON_UNSPECIFIED: _ClassVar[ReasonCode]
    OK: _ClassVar[ReasonCode]
    CARD_NOT_FOUND: _ClassVar[ReasonCode]
    CARD_INVALID: _ClassVar[ReasonCode]
    CARD_SIGNATURE: _ClassVar[ReasonCode]
    CARD_EXPIRED: _ClassVar[ReasonCode]
    CARD_NOT_YET_VALID: _ClassVar[ReasonCode]
    CARD_REVOKED: _ClassVar[ReasonCode]
    CARD_WRONG_TYPE: _ClassVar[ReasonCode]
    CARD_WRONG_SCOPE: _ClassVar[ReasonCode]
    TEMPLATE_MISSING: _ClassVar[ReasonCode]
    TEMPLATE_MISMATCH: _ClassVar[ReasonCode]
    NO_FACE: _ClassVar[ReasonCode]
    FACE_QUALITY: _ClassVar[ReasonCode]
    LIVENESS_FAILED: _ClassVar[ReasonCode]
    CHALLENGE_FAILED: _ClassVar[ReasonCode]
    FACE_MISMATCH: _ClassVar[ReasonCode]
    TIME_BUDGET: _ClassVar[ReasonCode]
    CLOCK_UNTRUSTED: _ClassVar[ReasonCode]
    CANCELLED: _ClassVar[ReasonCode]
    FACE_CHANGED: _ClassVar[ReasonCode]
    DATA_STALE: _ClassVar[ReasonCode]
    RATE_LIMITED: _ClassVar[ReasonCode]
    CARD_WRONG_WARD: _ClassVar[ReasonCode]
    CONDITION_EXPIRED: _ClassVar[ReasonCode]
    ENTRY_LIMIT: _ClassVar[ReasonCode]
    STAFF_OVERRIDE: _ClassVar[ReasonCode]
    DELEGATION_REQUIRED: _ClassVar[ReasonCode]
    DELEGATION_INVALID: _ClassVar[ReasonCode]
    DELEGATION_EXPIRED: _ClassVar[ReasonCode]
    DELEGATION_REVOKED: _ClassVar[ReasonCode]
    DELEGATION_MISMATCH: _ClassVar[ReasonCode]
    DELEGATION_NOT_ACCEPTED: _ClassVar[ReasonCode]
    VACCINATION_RECORD: _ClassVar[ReasonCode]
DECISION_UNSPECIFIED: Decision
ALLOW: Decision
DENY: Decision
RETRY: Decision
REASON_UNSPECIFIED: ReasonCode
OK: ReasonCode
CARD_NOT_FOUND: ReasonCode
CARD_INVALID: ReasonCode
CARD_SIGNATURE: ReasonCode
CARD_EXPIRED: ReasonCode
CARD_NOT_YET_VALID: ReasonCode
CARD_REVOKED: ReasonCode
CARD_WRONG_TYPE: ReasonCode
CARD_WRONG_SCOPE: ReasonCode
TEMPLATE_MISSING: ReasonCode
TEMPLATE_MISMATCH: ReasonCode
NO_FACE: ReasonCode
FACE_QUALITY: ReasonCode
LIVENESS_FAILED: ReasonCode
CHALLENGE_FAILED: ReasonCode
FACE_MISMATCH: ReasonCode
TIME_BUDGET: ReasonCode
CLOCK_UNTRUSTED: ReasonCode
CANCELLED: ReasonCode
FACE_CHANGED: ReasonCode
DATA_STALE: ReasonCode
RATE_LIMITED: ReasonCode
CARD_WRONG_WARD: ReasonCode
CONDITION_EXPIRED: ReasonCode
ENTRY_LIMIT: ReasonCode
STAFF_OVERRIDE: ReasonCode
DELEGATION_REQUIRED: ReasonCode
DELEGATION_INVALID: ReasonCode
DELEGATION_EXPIRED: ReasonCode
DELEGATION_REVOKED: ReasonCode
DELEGATION_MISMATCH: ReasonCode
DELEGATION_NOT_ACCEPTED: ReasonCode
VACCINATION_RECORD: ReasonCode

class StageTiming(_message.Message):
    __slots__ = ("stage", "ms")
    STAGE_FIELD_NUMBER: _ClassVar[int]
    MS_FIELD_NUMBER: _ClassVar[int]
    stage: str
    ms: float
    def __init__(self, stage: _Optional[str] = ..., ms: _Optional[float] = ...) -> None: ...

class VerifyRequest(_message.Message):
    __slots__ = ("request_id", "nonce", "gate_id", "card_text", "delegation_text")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    NONCE_FIELD_NUMBER: _ClassVar[int]
    GATE_ID_FIELD_NUMBER: _ClassVar[int]
    CARD_TEXT_FIELD_NUMBER: _ClassVar[int]
    DELEGATION_TEXT_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    nonce: bytes
    gate_id: str
    card_text: str
    delegation_text: str
    def __init__(self, request_id: _Optional[str] = ..., nonce: _Optional[bytes] = ..., gate_id: _Optional[str] = ..., card_text: _Optional[str] = ..., delegation_text: _Optional[str] = ...) -> None: ...

class VerifyResponse(_message.Message):
    __slots__ = ("request_id", "decision", "reasons", "messages", "token", "token_id", "card_id", "match_score", "match_threshold", "liveness_score", "timings", "prompts")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOKEN_ID_FIELD_NUMBER: _ClassVar[int]
    CARD_ID_FIELD_NUMBER: _ClassVar[int]
    MATCH_SCORE_FIELD_NUMBER: _ClassVar[int]
    MATCH_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    LIVENESS_SCORE_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    PROMPTS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    decision: Decision
    reasons: _containers.RepeatedScalarFieldContainer[ReasonCode]
    messages: _containers.RepeatedScalarFieldContainer[str]
    token: bytes
    token_id: str
    card_id: str
    match_score: float
    match_threshold: float
    liveness_score: float
    timings: _containers.RepeatedCompositeFieldContainer[StageTiming]
    prompts: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, request_id: _Optional[str] = ..., decision: _Optional[_Union[Decision, str]] = ..., reasons: _Optional[_Iterable[_Union[ReasonCode, str]]] = ..., messages: _Optional[_Iterable[str]] = ..., token: _Optional[bytes] = ..., token_id: _Optional[str] = ..., card_id: _Optional[str] = ..., match_score: _Optional[float] = ..., match_threshold: _Optional[float] = ..., liveness_score: _Optional[float] = ..., timings: _Optional[_Iterable[_Union[StageTiming, _Mapping]]] = ..., prompts: _Optional[_Iterable[str]] = ...) -> None: ...

class OverrideRequest(_message.Message):
    __slots__ = ("request_id", "nonce", "refused_token_id", "refused_card_id", "reason", "staff_card_text")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    NONCE_FIELD_NUMBER: _ClassVar[int]
    REFUSED_TOKEN_ID_FIELD_NUMBER: _ClassVar[int]
    REFUSED_CARD_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    STAFF_CARD_TEXT_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    nonce: bytes
    refused_token_id: str
    refused_card_id: str
    reason: str
    staff_card_text: str
    def __init__(self, request_id: _Optional[str] = ..., nonce: _Optional[bytes] = ..., refused_token_id: _Optional[str] = ..., refused_card_id: _Optional[str] = ..., reason: _Optional[str] = ..., staff_card_text: _Optional[str] = ...) -> None: ...

class VaccinationRecordRequest(_message.Message):
    __slots__ = ("request_id", "verification_token_id", "vaccine_code", "lot_number", "expiry", "dose_number", "series_doses", "route", "body_site", "performer_staff_id", "occurred_at")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    VERIFICATION_TOKEN_ID_FIELD_NUMBER: _ClassVar[int]
    VACCINE_CODE_FIELD_NUMBER: _ClassVar[int]
    LOT_NUMBER_FIELD_NUMBER: _ClassVar[int]
    EXPIRY_FIELD_NUMBER: _ClassVar[int]
    DOSE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    SERIES_DOSES_FIELD_NUMBER: _ClassVar[int]
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    BODY_SITE_FIELD_NUMBER: _ClassVar[int]
    PERFORMER_STAFF_ID_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    verification_token_id: str
    vaccine_code: str
    lot_number: str
    expiry: str
    dose_number: int
    series_doses: int
    route: str
    body_site: str
    performer_staff_id: str
    occurred_at: int
    def __init__(self, request_id: _Optional[str] = ..., verification_token_id: _Optional[str] = ..., vaccine_code: _Optional[str] = ..., lot_number: _Optional[str] = ..., expiry: _Optional[str] = ..., dose_number: _Optional[int] = ..., series_doses: _Optional[int] = ..., route: _Optional[str] = ..., body_site: _Optional[str] = ..., performer_staff_id: _Optional[str] = ..., occurred_at: _Optional[int] = ...) -> None: ...

class VaccinationRecordResponse(_message.Message):
    __slots__ = ("request_id", "record_id", "token")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    record_id: str
    token: bytes
    def __init__(self, request_id: _Optional[str] = ..., record_id: _Optional[str] = ..., token: _Optional[bytes] = ...) -> None: ...

class SessionClientMessage(_message.Message):
    __slots__ = ("start", "cancel")
    START_FIELD_NUMBER: _ClassVar[int]
    CANCEL_FIELD_NUMBER: _ClassVar[int]
    start: VerifyRequest
    cancel: bool
    def __init__(self, start: _Optional[_Union[VerifyRequest, _Mapping]] = ..., cancel: _Optional[bool] = ...) -> None: ...

class Progress(_message.Message):
    __slots__ = ("stage", "message")
    STAGE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    stage: str
    message: str
    def __init__(self, stage: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class SessionServerMessage(_message.Message):
    __slots__ = ("prompt", "progress", "result")
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    prompt: str
    progress: Progress
    result: VerifyResponse
    def __init__(self, prompt: _Optional[str] = ..., progress: _Optional[_Union[Progress, _Mapping]] = ..., result: _Optional[_Union[VerifyResponse, _Mapping]] = ...) -> None: ...

class DecodeCardRequest(_message.Message):
    __slots__ = ("card_text",)
    CARD_TEXT_FIELD_NUMBER: _ClassVar[int]
    card_text: str
    def __init__(self, card_text: _Optional[str] = ...) -> None: ...

class DecodeCardResponse(_message.Message):
    __slots__ = ("valid", "reason", "message", "card_id", "card_type", "site", "expires_at")
    VALID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    CARD_ID_FIELD_NUMBER: _ClassVar[int]
    CARD_TYPE_FIELD_NUMBER: _ClassVar[int]
    SITE_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    valid: bool
    reason: ReasonCode
    message: str
    card_id: str
    card_type: str
    site: str
    expires_at: int
    def __init__(self, valid: _Optional[bool] = ..., reason: _Optional[_Union[ReasonCode, str]] = ..., message: _Optional[str] = ..., card_id: _Optional[str] = ..., card_type: _Optional[str] = ..., site: _Optional[str] = ..., expires_at: _Optional[int] = ...) -> None: ...

class EnrollRequest(_message.Message):
    __slots__ = ("card_id", "frames")
    CARD_ID_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    card_id: str
    frames: int
    def __init__(self, card_id: _Optional[str] = ..., frames: _Optional[int] = ...) -> None: ...

class EnrollResponse(_message.Message):
    __slots__ = ("card_id", "template_sha256", "model_id", "sealed_template")
    CARD_ID_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_SHA256_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    SEALED_TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    card_id: str
    template_sha256: str
    model_id: str
    sealed_template: bytes
    def __init__(self, card_id: _Optional[str] = ..., template_sha256: _Optional[str] = ..., model_id: _Optional[str] = ..., sealed_template: _Optional[bytes] = ...) -> None: ...

class DeviceInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DeviceInfo(_message.Message):
    __slots__ = ("device_id", "key_id", "public_key", "site", "gate_id", "version", "clock_trusted", "templates", "outbox_pending", "config_json", "outbox_rejected", "last_sync_age_s", "delivery_error", "encryption_key", "tls_expires_at", "tls_expires_certificate")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    SITE_FIELD_NUMBER: _ClassVar[int]
    GATE_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CLOCK_TRUSTED_FIELD_NUMBER: _ClassVar[int]
    TEMPLATES_FIELD_NUMBER: _ClassVar[int]
    OUTBOX_PENDING_FIELD_NUMBER: _ClassVar[int]
    CONFIG_JSON_FIELD_NUMBER: _ClassVar[int]
    OUTBOX_REJECTED_FIELD_NUMBER: _ClassVar[int]
    LAST_SYNC_AGE_S_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_ERROR_FIELD_NUMBER: _ClassVar[int]
    ENCRYPTION_KEY_FIELD_NUMBER: _ClassVar[int]
    TLS_EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    TLS_EXPIRES_CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    key_id: str
    public_key: bytes
    site: str
    gate_id: str
    version: str
    clock_trusted: bool
    templates: int
    outbox_pending: int
    config_json: str
    outbox_rejected: int
    last_sync_age_s: float
    delivery_error: str
    encryption_key: bytes
    tls_expires_at: float
    tls_expires_certificate: str
    def __init__(self, device_id: _Optional[str] = ..., key_id: _Optional[str] = ..., public_key: _Optional[bytes] = ..., site: _Optional[str] = ..., gate_id: _Optional[str] = ..., version: _Optional[str] = ..., clock_trusted: _Optional[bool] = ..., templates: _Optional[int] = ..., outbox_pending: _Optional[int] = ..., config_json: _Optional[str] = ..., outbox_rejected: _Optional[int] = ..., last_sync_age_s: _Optional[float] = ..., delivery_error: _Optional[str] = ..., encryption_key: _Optional[bytes] = ..., tls_expires_at: _Optional[float] = ..., tls_expires_certificate: _Optional[str] = ...) -> None: ...
