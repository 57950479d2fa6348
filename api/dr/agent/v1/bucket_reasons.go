package agentv1

// ErrorInfo reasons of BucketService.
const (
	// ReasonNoBucketSource: the agent has no bucket source of that name.
	ReasonNoBucketSource = "NO_BUCKET_SOURCE"
	// ReasonNotBucketLeader: the agent does not run bucket passes (its
	// etcd member does not lead); ask the leader's.
	ReasonNotBucketLeader = "NOT_BUCKET_LEADER"
)
