from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class IngestStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INGEST_STATUS_UNSPECIFIED: _ClassVar[IngestStatus]
    STORED: _ClassVar[IngestStatus]
    DUPLICATE: _ClassVar[IngestStatus]
    REJECTED: _ClassVar[IngestStatus]

class DeviceState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DEVICE_STATE_UNSPECIFIED: _ClassVar[DeviceState]
    ACTIVE: _ClassVar[DeviceState]
    SUSPENDED: _ClassVar[DeviceState]
    RETIRED: _ClassVar[DeviceState]
INGEST_STATUS_UNSPECIFIED: IngestStatus
STORED: IngestStatus
DUPLICATE: IngestStatus
REJECTED: IngestStatus
DEVICE_STATE_UNSPECIFIED: DeviceState
ACTIVE: DeviceState
SUSPENDED: DeviceState
RETIRED: DeviceState

class RegisterDeviceRequest(_message.Message):
    __slots__ = ("device_id", "signing_key", "encryption_key", "site")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    SIGNING_KEY_FIELD_NUMBER: _ClassVar[int]
    ENCRYPTION_KEY_FIELD_NUMBER: _ClassVar[int]
    SITE_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    signing_key: bytes
    encryption_key: bytes
    site: str
    def __init__(self, device_id: _Optional[str] = ..., signing_key: _Optional[bytes] = ..., encryption_key: _Optional[bytes] = ..., site: _Optional[str] = ...) -> None: ...

class RegisterDeviceResponse(_message.Message):
    __slots__ = ("key_id",)
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    key_id: str
    def __init__(self, key_id: _Optional[str] = ...) -> None: ...

class IssueCardRequest(_message.Message):
    __slots__ = ("card_type", "site", "ward", "station", "valid_for_s", "template_sha256", "model_id", "holder", "age_band", "age_band_until", "window_start", "window_end")
    CARD_TYPE_FIELD_NUMBER: _ClassVar[int]
    SITE_FIELD_NUMBER: _ClassVar[int]
    WARD_FIELD_NUMBER: _ClassVar[int]
    STATION_FIELD_NUMBER: _ClassVar[int]
    VALID_FOR_S_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_SHA256_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    HOLDER_FIELD_NUMBER: _ClassVar[int]
    AGE_BAND_FIELD_NUMBER: _ClassVar[int]
    AGE_BAND_UNTIL_FIELD_NUMBER: _ClassVar[int]
    WINDOW_START_FIELD_NUMBER: _ClassVar[int]
    WINDOW_END_FIELD_NUMBER: _ClassVar[int]
    card_type: str
    site: str
    ward: str
    station: str
    valid_for_s: int
    template_sha256: bytes
    model_id: str
    holder: bytes
    age_band: str
    age_band_until: int
    window_start: int
    window_end: int
    def __init__(self, card_type: _Optional[str] = ..., site: _Optional[str] = ..., ward: _Optional[str] = ..., station: _Optional[str] = ..., valid_for_s: _Optional[int] = ..., template_sha256: _Optional[bytes] = ..., model_id: _Optional[str] = ..., holder: _Optional[bytes] = ..., age_band: _Optional[str] = ..., age_band_until: _Optional[int] = ..., window_start: _Optional[int] = ..., window_end: _Optional[int] = ...) -> None: ...

class IssueCardResponse(_message.Message):
    __slots__ = ("card_id", "qr_text", "expires_at")
    CARD_ID_FIELD_NUMBER: _ClassVar[int]
    QR_TEXT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    card_id: str
    qr_text: str
    expires_at: int
    def __init__(self, card_id: _Optional[str] = ..., qr_text: _Optional[str] = ..., expires_at: _Optional[int] = ...) -> None: ...

class StoreTemplateRequest(_message.Message):
    __slots__ = ("card_id", "sealed_template", "model_id")
    CARD_ID_FIELD_NUMBER: _ClassVar[int]
    SEALED_TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    card_id: str
    sealed_template: bytes
    model_id: str
    def __init__(self, card_id: _Optional[str] = ..., sealed_template: _Optional[bytes] = ..., model_id: _Optional[str] = ...) -> None: ...

class StoreTemplateResponse(_message.Message):
    __slots__ = ("template_sha256",)
    TEMPLATE_SHA256_FIELD_NUMBER: _ClassVar[int]
    template_sha256: bytes
    def __init__(self, template_sha256: _Optional[bytes] = ...) -> None: ...

class SyncTemplatesRequest(_message.Message):
    __slots__ = ("device_id", "after_card_id", "limit", "known_version")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_CARD_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    KNOWN_VERSION_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    after_card_id: str
    limit: int
    known_version: int
    def __init__(self, device_id: _Optional[str] = ..., after_card_id: _Optional[str] = ..., limit: _Optional[int] = ..., known_version: _Optional[int] = ...) -> None: ...

class SealedTemplate(_message.Message):
    __slots__ = ("card_id", "sealed_template", "model_id")
    CARD_ID_FIELD_NUMBER: _ClassVar[int]
    SEALED_TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    card_id: str
    sealed_template: bytes
    model_id: str
    def __init__(self, card_id: _Optional[str] = ..., sealed_template: _Optional[bytes] = ..., model_id: _Optional[str] = ...) -> None: ...

class SyncTemplatesResponse(_message.Message):
    __slots__ = ("templates", "more", "version", "unchanged", "withheld_card_ids")
    TEMPLATES_FIELD_NUMBER: _ClassVar[int]
    MORE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    UNCHANGED_FIELD_NUMBER: _ClassVar[int]
    WITHHELD_CARD_IDS_FIELD_NUMBER: _ClassVar[int]
    templates: _containers.RepeatedCompositeFieldContainer[SealedTemplate]
    more: bool
    version: int
    unchanged: bool
    withheld_card_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, templates: _Optional[_Iterable[_Union[SealedTemplate, _Mapping]]] = ..., more: _Optional[bool] = ..., version: _Optional[int] = ..., unchanged: _Optional[bool] = ..., withheld_card_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class Empty(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DocumentRequest(_message.Message):
    __slots__ = ("known_version",)
    KNOWN_VERSION_FIELD_NUMBER: _ClassVar[int]
    known_version: int
    def __init__(self, known_version: _Optional[int] = ...) -> None: ...

class Document(_message.Message):
    __slots__ = ("version", "json", "unchanged")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    JSON_FIELD_NUMBER: _ClassVar[int]
    UNCHANGED_FIELD_NUMBER: _ClassVar[int]
    version: int
    json: str
    unchanged: bool
    def __init__(self, version: _Optional[int] = ..., json: _Optional[str] = ..., unchanged: _Optional[bool] = ...) -> None: ...

class IngestTokensRequest(_message.Message):
    __slots__ = ("tokens",)
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    tokens: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, tokens: _Optional[_Iterable[bytes]] = ...) -> None: ...

class IngestResult(_message.Message):
    __slots__ = ("token_id", "status", "reason")
    TOKEN_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    token_id: str
    status: IngestStatus
    reason: str
    def __init__(self, token_id: _Optional[str] = ..., status: _Optional[_Union[IngestStatus, str]] = ..., reason: _Optional[str] = ...) -> None: ...

class IngestTokensResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[IngestResult]
    def __init__(self, results: _Optional[_Iterable[_Union[IngestResult, _Mapping]]] = ...) -> None: ...

class AuditHistoryRequest(_message.Message):
    __slots__ = ("card_id", "limit", "after")
    CARD_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    card_id: str
    limit: int
    after: str
    def __init__(self, card_id: _Optional[str] = ..., limit: _Optional[int] = ..., after: _Optional[str] = ...) -> None: ...

class AuditEntry(_message.Message):
    __slots__ = ("token_id", "device_id", "iat", "decision", "reasons", "sequence", "site", "gate")
    TOKEN_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    IAT_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    SITE_FIELD_NUMBER: _ClassVar[int]
    GATE_FIELD_NUMBER: _ClassVar[int]
    token_id: str
    device_id: str
    iat: int
    decision: str
    reasons: _containers.RepeatedScalarFieldContainer[str]
    sequence: int
    site: str
    gate: str
    def __init__(self, token_id: _Optional[str] = ..., device_id: _Optional[str] = ..., iat: _Optional[int] = ..., decision: _Optional[str] = ..., reasons: _Optional[_Iterable[str]] = ..., sequence: _Optional[int] = ..., site: _Optional[str] = ..., gate: _Optional[str] = ...) -> None: ...

class AuditHistoryResponse(_message.Message):
    __slots__ = ("entries", "next_page")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[AuditEntry]
    next_page: str
    def __init__(self, entries: _Optional[_Iterable[_Union[AuditEntry, _Mapping]]] = ..., next_page: _Optional[str] = ...) -> None: ...

class RevokeCardRequest(_message.Message):
    __slots__ = ("card_id", "reason")
    CARD_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    card_id: str
    reason: str
    def __init__(self, card_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class RevokeCardResponse(_message.Message):
    __slots__ = ("revocation_list_version", "already_revoked")
    REVOCATION_LIST_VERSION_FIELD_NUMBER: _ClassVar[int]
    ALREADY_REVOKED_FIELD_NUMBER: _ClassVar[int]
    revocation_list_version: int
    already_revoked: bool
    def __init__(self, revocation_list_version: _Optional[int] = ..., already_revoked: _Optional[bool] = ...) -> None: ...

class SetDeviceStateRequest(_message.Message):
    __slots__ = ("device_id", "state")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    state: DeviceState
    def __init__(self, device_id: _Optional[str] = ..., state: _Optional[_Union[DeviceState, str]] = ...) -> None: ...

class SetDeviceStateResponse(_message.Message):
    __slots__ = ("state", "since")
    STATE_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    state: DeviceState
    since: float
    def __init__(self, state: _Optional[_Union[DeviceState, str]] = ..., since: _Optional[float] = ...) -> None: ...

class ListDevicesRequest(_message.Message):
    __slots__ = ("site",)
    SITE_FIELD_NUMBER: _ClassVar[int]
    site: str
    def __init__(self, site: _Optional[str] = ...) -> None: ...

class DeviceEntry(_message.Message):
    __slots__ = ("device_id", "site", "state", "state_since", "registered", "key_id", "last_seen", "certificate_not_after")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    SITE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STATE_SINCE_FIELD_NUMBER: _ClassVar[int]
    REGISTERED_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_NOT_AFTER_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    site: str
    state: DeviceState
    state_since: float
    registered: float
    key_id: str
    last_seen: float
    certificate_not_after: float
    def __init__(self, device_id: _Optional[str] = ..., site: _Optional[str] = ..., state: _Optional[_Union[DeviceState, str]] = ..., state_since: _Optional[float] = ..., registered: _Optional[float] = ..., key_id: _Optional[str] = ..., last_seen: _Optional[float] = ..., certificate_not_after: _Optional[float] = ...) -> None: ...

class ListDevicesResponse(_message.Message):
    __slots__ = ("devices",)
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    devices: _containers.RepeatedCompositeFieldContainer[DeviceEntry]
    def __init__(self, devices: _Optional[_Iterable[_Union[DeviceEntry, _Mapping]]] = ...) -> None: ...

class RotateDeviceKeyRequest(_message.Message):
    __slots__ = ("device_id", "signing_key", "encryption_key")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    SIGNING_KEY_FIELD_NUMBER: _ClassVar[int]
    ENCRYPTION_KEY_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    signing_key: bytes
    encryption_key: bytes
    def __init__(self, device_id: _Optional[str] = ..., signing_key: _Optional[bytes] = ..., encryption_key: _Optional[bytes] = ...) -> None: ...

class AdmitPatientRequest(_message.Message):
    __slots__ = ("patient_id", "site", "ward", "expected_days")
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    SITE_FIELD_NUMBER: _ClassVar[int]
    WARD_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_DAYS_FIELD_NUMBER: _ClassVar[int]
    patient_id: str
    site: str
    ward: str
    expected_days: float
    def __init__(self, patient_id: _Optional[str] = ..., site: _Optional[str] = ..., ward: _Optional[str] = ..., expected_days: _Optional[float] = ...) -> None: ...

class TransferPatientRequest(_message.Message):
    __slots__ = ("patient_id", "ward")
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    WARD_FIELD_NUMBER: _ClassVar[int]
    patient_id: str
    ward: str
    def __init__(self, patient_id: _Optional[str] = ..., ward: _Optional[str] = ...) -> None: ...

class DischargePatientRequest(_message.Message):
    __slots__ = ("patient_id",)
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    patient_id: str
    def __init__(self, patient_id: _Optional[str] = ...) -> None: ...

class UpdateAdmissionRequest(_message.Message):
    __slots__ = ("patient_id", "expected_days")
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_DAYS_FIELD_NUMBER: _ClassVar[int]
    patient_id: str
    expected_days: float
    def __init__(self, patient_id: _Optional[str] = ..., expected_days: _Optional[float] = ...) -> None: ...

class AdmissionResponse(_message.Message):
    __slots__ = ("patient_id", "ward", "ended_permits", "revocation_list_version")
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    WARD_FIELD_NUMBER: _ClassVar[int]
    ENDED_PERMITS_FIELD_NUMBER: _ClassVar[int]
    REVOCATION_LIST_VERSION_FIELD_NUMBER: _ClassVar[int]
    patient_id: str
    ward: str
    ended_permits: _containers.RepeatedScalarFieldContainer[str]
    revocation_list_version: int
    def __init__(self, patient_id: _Optional[str] = ..., ward: _Optional[str] = ..., ended_permits: _Optional[_Iterable[str]] = ..., revocation_list_version: _Optional[int] = ...) -> None: ...

class IssueEscortPermitRequest(_message.Message):
    __slots__ = ("patient_id", "template_sha256", "model_id", "age_band", "condition_until", "replace", "holder", "age_band_until")
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_SHA256_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    AGE_BAND_FIELD_NUMBER: _ClassVar[int]
    CONDITION_UNTIL_FIELD_NUMBER: _ClassVar[int]
    REPLACE_FIELD_NUMBER: _ClassVar[int]
    HOLDER_FIELD_NUMBER: _ClassVar[int]
    AGE_BAND_UNTIL_FIELD_NUMBER: _ClassVar[int]
    patient_id: str
    template_sha256: bytes
    model_id: str
    age_band: str
    condition_until: int
    replace: bool
    holder: bytes
    age_band_until: int
    def __init__(self, patient_id: _Optional[str] = ..., template_sha256: _Optional[bytes] = ..., model_id: _Optional[str] = ..., age_band: _Optional[str] = ..., condition_until: _Optional[int] = ..., replace: _Optional[bool] = ..., holder: _Optional[bytes] = ..., age_band_until: _Optional[int] = ...) -> None: ...

class IssueEscortPermitResponse(_message.Message):
    __slots__ = ("card_id", "qr_text", "expires_at", "replaced")
    CARD_ID_FIELD_NUMBER: _ClassVar[int]
    QR_TEXT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    REPLACED_FIELD_NUMBER: _ClassVar[int]
    card_id: str
    qr_text: str
    expires_at: int
    replaced: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, card_id: _Optional[str] = ..., qr_text: _Optional[str] = ..., expires_at: _Optional[int] = ..., replaced: _Optional[_Iterable[str]] = ...) -> None: ...

class IssueDelegationRequest(_message.Message):
    __slots__ = ("child_card_id", "template_sha256", "model_id", "valid_until", "holder", "guardian_card_id")
    CHILD_CARD_ID_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_SHA256_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    VALID_UNTIL_FIELD_NUMBER: _ClassVar[int]
    HOLDER_FIELD_NUMBER: _ClassVar[int]
    GUARDIAN_CARD_ID_FIELD_NUMBER: _ClassVar[int]
    child_card_id: str
    template_sha256: bytes
    model_id: str
    valid_until: int
    holder: bytes
    guardian_card_id: str
    def __init__(self, child_card_id: _Optional[str] = ..., template_sha256: _Optional[bytes] = ..., model_id: _Optional[str] = ..., valid_until: _Optional[int] = ..., holder: _Optional[bytes] = ..., guardian_card_id: _Optional[str] = ...) -> None: ...

class IssueDelegationResponse(_message.Message):
    __slots__ = ("card_id", "qr_text", "expires_at")
    CARD_ID_FIELD_NUMBER: _ClassVar[int]
    QR_TEXT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    card_id: str
    qr_text: str
    expires_at: int
    def __init__(self, card_id: _Optional[str] = ..., qr_text: _Optional[str] = ..., expires_at: _Optional[int] = ...) -> None: ...

class ImmunizationHistoryRequest(_message.Message):
    __slots__ = ("card_id",)
    CARD_ID_FIELD_NUMBER: _ClassVar[int]
    card_id: str
    def __init__(self, card_id: _Optional[str] = ...) -> None: ...

class ReissueListsRequest(_message.Message):
    __slots__ = ("above",)
    ABOVE_FIELD_NUMBER: _ClassVar[int]
    above: int
    def __init__(self, above: _Optional[int] = ...) -> None: ...

class ReissueListsResponse(_message.Message):
    __slots__ = ("trust_list_version", "revocation_list_version")
    TRUST_LIST_VERSION_FIELD_NUMBER: _ClassVar[int]
    REVOCATION_LIST_VERSION_FIELD_NUMBER: _ClassVar[int]
    trust_list_version: int
    revocation_list_version: int
    def __init__(self, trust_list_version: _Optional[int] = ..., revocation_list_version: _Optional[int] = ...) -> None: ...
