// Package backupverify checks that a backup set can be restored: its etcd
// snapshot read back from the store against its checksum, its restic
// snapshots present in the repository, and restic check over the
// repository (reading back a subset of the data when asked). It is the
// engine behind VerifyBackup; the gRPC server only adapts it.
package backupverify
