package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/etcdutl/v3/snapshot"
	"go.uber.org/zap"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-dr/kubectl-dr/internal/k3sboot"
	"github.com/kubectl-dr/kubectl-dr/internal/kvsnap"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "k3s-standin:", err)
		os.Exit(1)
	}
}

type k3sConfig struct {
	NodeName       string `json:"node-name"`
	StandinPeerURL string `json:"standin-peer-url"`
	Token          string `json:"token"`
}

// Version is what the stand-in says it is: the k3s of the lab's
// Kubernetes (v1.35).
const Version = "v1.35.4+k3s1"

func run(args []string) error {
	if len(args) == 1 && (args[0] == "--version" || args[0] == "-v") {
		fmt.Printf("k3s version %s (k3s-standin)\ngo version %s\n", Version, runtime.Version())
		return nil
	}
	if len(args) == 0 || args[0] != "server" {
		return errors.New("this stand-in only runs `server --cluster-reset --cluster-reset-restore-path=FILE [--data-dir=DIR] [--token=T]`")
	}
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	reset := fs.Bool("cluster-reset", false, "")
	restorePath := fs.String("cluster-reset-restore-path", "", "")
	dataDir := fs.String("data-dir", "/var/lib/rancher/k3s", "")
	token := fs.String("token", "", "")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if !*reset || *restorePath == "" {
		return errors.New("this stand-in only performs the cluster reset from a snapshot (--cluster-reset --cluster-reset-restore-path=FILE)")
	}
	cfgPath := os.Getenv("K3S_CONFIG_FILE")
	if cfgPath == "" {
		cfgPath = "/etc/rancher/k3s/config.yaml"
		// A lab node's root holds its /etc beside its /var/lib/rancher/k3s.
		if root, ok := strings.CutSuffix(filepath.Clean(*dataDir), "/var/lib/rancher/k3s"); ok && root != "" {
			cfgPath = filepath.Join(root, cfgPath)
		}
	}
	data, err := os.ReadFile(cfgPath)
	if err != nil {
		return err
	}
	var cfg k3sConfig
	if err := yaml.UnmarshalStrict(data, &cfg); err != nil {
		return fmt.Errorf("%s: %w", cfgPath, err)
	}
	if cfg.NodeName == "" || cfg.StandinPeerURL == "" {
		return fmt.Errorf("%s: node-name and standin-peer-url are required", cfgPath)
	}
	if *token == "" {
		*token = cfg.Token
	}
	if *token == "" {
		if b, err := os.ReadFile(filepath.Join(*dataDir, "server", "token")); err == nil {
			*token = strings.TrimSpace(string(b))
		}
	}
	if *token == "" {
		return errors.New("no server token (server/token or --token): k3s cannot decrypt the snapshot's bootstrap data without it")
	}
	if _, err := os.Stat(*restorePath); err != nil {
		return err
	}
	if strings.HasSuffix(*restorePath, ".zip") {
		return errors.New("compressed (.zip) snapshots are not handled by this stand-in")
	}
	// k3s reads its bootstrap data from the restored datastore under the
	// key its token makes, and stops when another token made it.
	if err := checkBootstrap(*restorePath, *token); err != nil {
		return err
	}
	dbDir := filepath.Join(*dataDir, "server", "db", "etcd")
	old := dbDir + "-old-" + strconv.Itoa(int(time.Now().Unix()))
	if err := os.Rename(dbDir, old); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "Pre-restore etcd database moved to %s\n", old)
	err = snapshot.NewV3(zap.NewNop()).Restore(snapshot.RestoreConfig{
		SnapshotPath:        *restorePath,
		Name:                cfg.NodeName,
		OutputDataDir:       dbDir,
		PeerURLs:            []string{cfg.StandinPeerURL},
		InitialCluster:      cfg.NodeName + "=" + cfg.StandinPeerURL,
		InitialClusterToken: "etcd-cluster",
	})
	if err != nil {
		return fmt.Errorf("restore %s: %w", *restorePath, err)
	}
	fmt.Fprintf(os.Stderr, "Managed etcd cluster membership has been reset, restart without --cluster-reset flag now. Backup and delete ${datadir}/server/db on each peer etcd server and rejoin the nodes\n")
	return nil
}

// checkBootstrap fails as k3s does when the snapshot's bootstrap data was
// encrypted with another token.
func checkBootstrap(path, token string) error {
	s, err := kvsnap.Open(path)
	if err != nil {
		return err
	}
	defer s.Close()
	var keys []string
	if _, err := s.Each(k3sboot.Prefix, func(kv kvsnap.KeyValue) error {
		keys = append(keys, string(kv.Key))
		return nil
	}); err != nil {
		return err
	}
	if len(keys) == 0 || slices.Contains(keys, k3sboot.Key(token)) {
		return nil
	}
	return errors.New(k3sboot.RefusedMessage)
}
