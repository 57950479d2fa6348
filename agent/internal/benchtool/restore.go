package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"filippo.io/age"
	"github.com/kubectl-dr/kubectl-dr/agent/internal/restoreplan"
	"github.com/kubectl-dr/kubectl-dr/internal/store/dbsnap"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
)

// restoreOurs runs what a restore plan runs on a node, minus stopping and
// starting etcd: the member's new data dir built from the store (download,
// decrypt, decompress and both checksums streamed straight into the new
// database, then the membership, revision bump, WAL), the verify-snapshot
// step and the restore-data-dir step (the swap).
func restoreOurs(ctx context.Context, name, keyFile, out string) error {
	store, err := objstore.Open(objstore.Config{}.FromEnv())
	if err != nil {
		return err
	}
	store = store.Sub(os.Getenv("DR_CLUSTER_ID"))
	list, _, err := dbsnap.ListStore(ctx, store)
	if err != nil {
		return err
	}
	snap, ok := dbsnap.Find(list, name)
	if !ok {
		return fmt.Errorf("no snapshot %s", name)
	}
	start := time.Now()
	p := &restoreplan.Plan{
		ID: "bench", Node: "bench", Flavor: "etcd", Created: time.Now(),
		Member: restoreplan.Member{
			Name: "bench", DataDir: filepath.Join(out, "etcd"), PeerURLs: []string{"http://127.0.0.1:2380"},
			InitialCluster: "bench=http://127.0.0.1:2380", InitialClusterToken: "bench",
			RevisionBump: restoreplan.KubernetesRevisionBump,
		},
		Steps: []restoreplan.Step{{Name: restoreplan.StepVerify, State: restoreplan.Pending}, {Name: restoreplan.StepRestore, State: restoreplan.Pending}},
	}
	var id age.Identity
	if keyFile != "" {
		if id, err = dbsnap.LoadIdentity(keyFile); err != nil {
			return err
		}
	}
	if _, err := restoreplan.Stage(ctx, store, snap, id, filepath.Join(out, "state"), p); err != nil {
		return err
	}
	staged := time.Since(start)
	r := &restoreplan.Runner{Plans: restoreplan.Plans{Dir: filepath.Join(out, "plans")}}
	if err := r.Run(ctx, p); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "  ours: build the new data dir from the store %s, verify + swap %s\n", staged.Round(time.Millisecond), (time.Since(start) - staged).Round(time.Millisecond))
	return nil
}

// download writes an object to a file the plain way (one GetObject), as
// mc cp or aws s3 cp do (no fsync).
func download(ctx context.Context, key, file string) error {
	store, err := objstore.Open(objstore.Config{}.FromEnv())
	if err != nil {
		return err
	}
	rc, err := store.Get(ctx, key)
	if err != nil {
		return err
	}
	defer rc.Close()
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, rc); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
