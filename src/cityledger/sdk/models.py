"""What the node answers, as typed values; byte strings stay hex as on the wire.

These are the API's own views, declared once in cityledger/wire/views.py, under the names the SDK
has always used. Unknown fields are ignored so that an older SDK keeps working against a newer node.
"""

from __future__ import annotations

from ..wire.batteries import (
    AccessEntryView as AccessEntry,
    AccessLogView as AccessLog,
    AlertsView as Alerts,
    AlertView as Alert,
    HeadProofView as HeadProof,
    RecycledContentView as RecycledContent,
    ReportBatchView as ReportBatch,
    PassportDocumentView as PassportDocument,
    PassportStoredView as PassportStored,
    TierHashView as TierHash,
)
from ..wire.payments import (
    ChannelView as Channel,
    CounterpartyView as Counterparty,
    EscrowView as Escrow,
    LockedView as Locked,
    PolicyView as Policy,
    VoucherCheckView as VoucherCheck,
    VoucherKeyView as VoucherKey,
)
from ..wire.vaults import (
    SealedRecordView,
    VaultErasureView,
    VaultLogEntryView,
    VaultLogView,
    VaultRecordsView,
    WrapView,
)
from ..wire.mobility import ScoreFeatureView as ScoreFeature, ScoreModelView as ScoreModel
from ..wire.dashboard import BatteryStagesView as BatteryStages, ChainChartView as ChainChart
from ..wire.owned import (DataSetView as DataSet, DeviceView as Device, EnrollmentView as Enrollment,
                          OwnedChannelsView, OwnedDataSetsView, OwnedDevicesView, OwnedEnrollmentsView,
                          OwnedEscrowsView)
from ..wire.views import (
    AccountView as Account,
    Attribute,
    BatchView as BatchResult,
    BlockView as Block,
    CheckView as CheckResult,
    ErrorBody,
    ErrorDetail,
    EventView as Event,
    HealthView as Health,
    ProofView,
    QueryView as QueryResult,
    StateView as StateValue,
    StatusView as Status,
    SubmitView as SubmitResult,
    TxResultView as TxResult,
    TxStatusView as TxStatus,
)

__all__ = [
    "Channel",
    "DataSet",
    "Device",
    "Enrollment",
    "OwnedChannelsView",
    "OwnedDataSetsView",
    "OwnedDevicesView",
    "OwnedEnrollmentsView",
    "OwnedEscrowsView",
    "Counterparty",
    "Escrow",
    "Locked",
    "Policy",
    "VoucherCheck",
    "VoucherKey",
    "AccessEntry",
    "AccessLog",
    "ScoreFeature",
    "ScoreModel",
    "Alert",
    "Alerts",
    "HeadProof",
    "RecycledContent",
    "ReportBatch",
    "PassportDocument",
    "PassportStored",
    "TierHash",
    "Account",
    "Attribute",
    "BatteryStages",
    "ChainChart",
    "BatchResult",
    "Block",
    "CheckResult",
    "ErrorBody",
    "ErrorDetail",
    "Event",
    "Health",
    "ProofView",
    "QueryResult",
    "StateValue",
    "Status",
    "SubmitResult",
    "TxResult",
    "TxStatus",
    "SealedRecordView",
    "VaultErasureView",
    "VaultLogEntryView",
    "VaultLogView",
    "VaultRecordsView",
    "WrapView",
]
