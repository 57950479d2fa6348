package agentv1

// Errors from the agent carry a google.rpc.ErrorInfo detail with this
// domain and one of the reasons below; clients match the reason, never the
// message text (which is for people and may change). Errors without a more
// precise reason carry their status code's name (e.g. "FAILED_PRECONDITION").
const ErrorDomain = "agent.dr.kubectl.io"

// Reasons in ErrorInfo.reason. Part of the wire contract: never rename.
const (
	// ReasonFilesOff: this node takes no file backups (no restic, no
	// password, or turned off in its config).
	ReasonFilesOff = "FILES_OFF"
	// ReasonNoPaths: file backups are on but this node has nothing to back up.
	ReasonNoPaths = "NO_PATHS"
	// ReasonNoStore: the node's agent has no store configured.
	ReasonNoStore = "NO_STORE"
	// ReasonBusy: the same kind of operation already runs on the node.
	ReasonBusy = "BUSY"
	// ReasonRestoreInProgress: a restore plan has not finished on the node.
	ReasonRestoreInProgress = "RESTORE_IN_PROGRESS"
	// ReasonChecksumMismatch: bytes in the store or on disk do not match
	// their recorded checksum; nothing was changed.
	ReasonChecksumMismatch = "CHECKSUM_MISMATCH"
	// ReasonNotEtcdMember: the node runs no etcd member.
	ReasonNotEtcdMember = "NOT_ETCD_MEMBER"
	// ReasonNoWALSource: the node has no WAL source of that name.
	ReasonNoWALSource = "NO_WAL_SOURCE"
	// ReasonNotFound: the snapshot, backup set or plan named does not exist.
	ReasonNotFound = "NOT_FOUND"
	// ReasonPreviewChanged: what a restore would act on on the node is not
	// what the preview the user confirmed showed (its digest differs);
	// nothing was moved or written. Preview again.
	ReasonPreviewChanged = "PREVIEW_CHANGED"
	// ReasonNoPostgres: the node has no PostgreSQL server binary of the
	// version a base backup needs (a drill's postgres part goes to
	// another agent).
	ReasonNoPostgres = "NO_POSTGRES"
	// ReasonSnapshotKeyNeeded: the request must decrypt (a snapshot, its
	// bootstrap files, a bucket copy) and carries no snapshot key; nodes
	// hold only the public recipient. Nothing was changed.
	ReasonSnapshotKeyNeeded = "SNAPSHOT_KEY_NEEDED"
	// ReasonRecordUnsigned: a record the request relies on (a snapshot's)
	// carries no signature, and the request did not allow that
	// (--allow-unsigned). Nothing was changed.
	ReasonRecordUnsigned = "RECORD_UNSIGNED"
	// ReasonRecordForged: a record's signature does not hold (changed or
	// planted after it was written, or signed by someone who may not vouch
	// for it). Nothing was changed; no flag accepts it.
	ReasonRecordForged = "RECORD_FORGED"
)

// MetadataNode is the ErrorInfo metadata key naming the agent's node.
const MetadataNode = "node"
