// Command benchtool helps the benchmarks in hack/bench: it fills etcd with
// data shaped like a cluster's, and uploads a file to the store the plain
// way (one PutObject), as a user without kubectl dr would.
//
//	benchtool fill -mib 1024        (ETCDCTL_* from `hack/lab env`)
//	benchtool upload FILE KEY       (DR_STORE, DR_S3_ENDPOINT, AWS_*)
//	benchtool download KEY FILE     (the same, one GetObject)
//	benchtool restore -snapshot NAME -key FILE -out DIR  (a restore plan's fetch and steps)
//	benchtool tree -files N -mib M DIR   (a file tree to back up)
//	benchtool touch -percent P DIR       (rewrite P% of the files)
//	benchtool rmprefix PREFIX            (empty a part of the store)
//	benchtool objsnap -n N -kib K DIR    (an etcd snapshot of N ConfigMaps in a file:// store)
//	benchtool walbench -corpus DIR -spool DIR -n N [-as USER CMD...]
//	                                     (spool-to-store latency, beside CMD's)
//	benchtool tlsproxy ADDR URL CAFILE   (HTTPS in front of MinIO)
//	benchtool kinefill -mib N STATE_DB   (a kine SQLite database of N MiB)
//	benchtool kinewrite STATE_DB         (kine-like writes until killed)
//	benchtool sqlitesnap -key FILE DIR   (the agent's SQLite snapshot of DIR/server/db/state.db)
package main
