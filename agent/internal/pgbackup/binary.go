package pgbackup

// ServerBinary is the PostgreSQL server binary of that major version on
// this node, or an error saying there is none: a scratch instance (pg
// restore --verify, a drill's replay) needs one.
func ServerBinary(version string) (string, error) { return postgresBinary(version) }
