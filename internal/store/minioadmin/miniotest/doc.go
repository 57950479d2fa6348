// Package miniotest starts a real MinIO server for a test: the binary
// named by $KDR_TEST_MINIO (the lab's build) on a free loopback port, its
// data in the test's temp dir, with root credentials. Tests only.
package miniotest
