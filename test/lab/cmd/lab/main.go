package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/kubectl-dr/kubectl-dr/test/lab"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "lab:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("lab", flag.ContinueOnError)
	root := fs.String("root", ".", "repository root")
	dir := fs.String("dir", os.Getenv("DR_LAB_DIR"), "lab directory (default $DR_LAB_DIR, else <root>/_output/lab)")
	members := fs.Int("etcd-members", 3, "etcd members: 1 or 3")
	nodes := fs.Int("nodes", 3, "nodes, each with a dr-agent")
	kubeNode := fs.String("kube-node", "server-1", "node that runs a real kubelet + containerd with the agent DaemonSet (\"\" for none)")
	direct := fs.Bool("direct", false, "env: also the plugin's direct-mode settings (the agents' client certificate, the store and its credentials, the snapshot key), for tools and benchmarks that talk to the store or the agents without the cluster")
	restore := fs.String("etcd-restore", "etcd", "how the etcd members' agents restore etcd: etcd (kubeadm-style, etcdutl), k3s (k3s's cluster reset, played by the k3s stand-in) or none")
	if len(args) == 0 {
		return errors.New("usage: hack/lab up|env|down|clean [flags]")
	}
	verb := args[0]
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	rootAbs, err := filepath.Abs(*root)
	if err != nil {
		return err
	}
	if *dir == "" {
		*dir = filepath.Join(rootAbs, "_output", "lab")
	}
	switch verb {
	case "up":
		flavor, err := restoreFlavor(*restore)
		if err != nil {
			return err
		}
		l, err := lab.Up(ctx, lab.Options{Dir: *dir, Root: rootAbs, EtcdMembers: *members, Nodes: *nodes, KubeNode: *kubeNode, EtcdRestore: flavor, Log: os.Stderr})
		if err != nil && l != nil {
			// Half a lab holds ports and the node's host paths: stop it.
			fmt.Fprintf(os.Stderr, "lab: up failed: %v\nlab: stopping what it started\n", err)
			if derr := l.Down(context.WithoutCancel(ctx), os.Stderr); derr != nil {
				return fmt.Errorf("up failed, and stopping what it started failed too (run hack/lab down): %w", derr)
			}
			return fmt.Errorf("up failed; everything it started is stopped, data stays in %s (hack/lab clean removes it)", l.Dir)
		}
		if err == nil {
			fmt.Fprintln(os.Stderr, restoreLine(flavor))
		}
		return err
	case "env":
		l, err := lab.Open(*dir, rootAbs)
		if err != nil {
			return err
		}
		env := l.UserEnv()
		if *direct {
			env = l.Env()
		}
		for _, kv := range env {
			k, v, _ := strings.Cut(kv, "=")
			fmt.Printf("export %s=%s\n", k, shellQuote(v))
		}
		return nil
	case "down":
		l, err := lab.Open(*dir, rootAbs)
		if err != nil {
			fmt.Fprintln(os.Stderr, "lab: nothing to stop:", err)
			return nil
		}
		return l.Down(ctx, os.Stderr)
	case "image":
		// make image: the agent image as a docker-archive tarball, for
		// `docker load`, `ctr images import` or pushing with crane/skopeo.
		out := filepath.Join(rootAbs, "_output", "dr-agent-image.tar")
		if fs.NArg() > 0 {
			out = fs.Arg(0)
		}
		return lab.BuildAgentImage(ctx, rootAbs, out, os.Getenv("IMAGE_TAG"), os.Stderr)
	case "stop", "start":
		// A restore's host actions in the lab: stop NAME stops one
		// process (etcd-server-2); start etcd-NODE starts that member again.
		if fs.NArg() != 1 {
			return fmt.Errorf("usage: lab %s [--dir DIR] NAME", verb)
		}
		l, err := lab.Open(*dir, rootAbs)
		if err != nil {
			return err
		}
		if fs.Arg(0) == "k3s-"+lab.SQLiteNode {
			// The SQLite server's k3s: kine and its kube-apiserver.
			if verb == "stop" {
				return l.StopSQLiteK3s()
			}
			return l.StartSQLiteK3s(ctx)
		}
		if verb == "stop" {
			return l.StopProcess(fs.Arg(0))
		}
		if err := l.LogHostAction(verb, fs.Arg(0)); err != nil {
			return err
		}
		node, ok := strings.CutPrefix(fs.Arg(0), "etcd-")
		if !ok {
			return fmt.Errorf("lab start: only etcd members (etcd-NODE) start alone; `lab up` starts the rest")
		}
		// Run by the kube node's agent pod, the member must not live in
		// the pod's cgroups.
		if err := l.LeavePodCgroups(); err != nil {
			return err
		}
		if err := l.StartEtcdMember(node); err != nil {
			return err
		}
		if l.State.EtcdRestore == "k3s" {
			// k3s's start brings its API server with etcd.
			return l.StartK3sAPIServer(ctx)
		}
		return nil
	case "port":
		p, err := lab.FreePort()
		if err != nil {
			return err
		}
		fmt.Println(p)
		return nil
	case "clean":
		if l, err := lab.Open(*dir, rootAbs); err == nil {
			if running := l.Running(); len(running) > 0 {
				return fmt.Errorf("still running: %s; run `hack/lab down` first", strings.Join(running, ", "))
			}
		}
		fmt.Fprintf(os.Stderr, "removing %s\n", *dir)
		return os.RemoveAll(*dir)
	}
	return fmt.Errorf("unknown command %q: use up, env, down, clean, stop or start", verb)
}

// restoreFlavor checks --etcd-restore; "none" is the lab's Options'
// empty flavour.
func restoreFlavor(s string) (string, error) {
	switch s {
	case "etcd", "k3s":
		return s, nil
	case "none", "":
		return "", nil
	}
	return "", fmt.Errorf("--etcd-restore %q: want etcd, k3s or none", s)
}

// restoreLine says at up how `kubectl dr etcd restore` works in this lab.
func restoreLine(flavor string) string {
	switch flavor {
	case "etcd":
		return "etcd restore: kubeadm-style (restore.flavor: etcd): each member's agent stops it (lab stop), builds its new data dir from the snapshot and starts it (lab start)"
	case "k3s":
		return "etcd restore: k3s's cluster reset (restore.flavor: k3s), played by the k3s stand-in (test/lab/cmd/k3s-standin: k3s cannot be built here); the lab's kube-apiserver runs apart from etcd, restart it after a reset (hack/lab stop kube-apiserver && hack/lab up)"
	}
	return "etcd restore: not configured (--etcd-restore none): the agents' default is k3s at /usr/local/bin/k3s, absent here, so kubectl dr etcd restore previews and refuses the restore before anything stops"
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
