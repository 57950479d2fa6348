package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/kubectl-dr/kubectl-dr/internal/etcdmember"

	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
)

func main() {
	// BENCH_CPUPROFILE=FILE writes a CPU profile of the command,
	// BENCH_MEMPROFILE=FILE its allocations (go tool pprof reads them):
	// where a benchmark's time and memory go.
	if p := os.Getenv("BENCH_CPUPROFILE"); p != "" {
		f, err := os.Create(p)
		if err != nil {
			fmt.Fprintln(os.Stderr, "benchtool:", err)
			os.Exit(1)
		}
		pprof.StartCPUProfile(f)
		defer f.Close()
		defer pprof.StopCPUProfile()
	}
	if p := os.Getenv("BENCH_MEMPROFILE"); p != "" {
		// Samples every allocation site's bytes (go tool pprof -sample_index=alloc_space).
		defer func() {
			if f, err := os.Create(p); err == nil {
				pprof.Lookup("allocs").WriteTo(f, 0)
				f.Close()
			}
		}()
	}
	if err := run(context.Background(), os.Args[1:]); err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "benchtool:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: benchtool fill|upload ...")
	}
	switch args[0] {
	case "fill":
		fs := flag.NewFlagSet("fill", flag.ExitOnError)
		mib := fs.Int("mib", 1024, "MiB of values to write")
		fs.Parse(args[1:])
		return fill(ctx, *mib)
	case "upload":
		if len(args) != 3 {
			return fmt.Errorf("usage: benchtool upload FILE KEY")
		}
		return upload(ctx, args[1], args[2])
	case "download":
		if len(args) != 3 {
			return fmt.Errorf("usage: benchtool download KEY FILE")
		}
		return download(ctx, args[1], args[2])
	case "restore":
		fs := flag.NewFlagSet("restore", flag.ExitOnError)
		name := fs.String("snapshot", "", "snapshot name")
		key := fs.String("key", "", "snapshot key file")
		out := fs.String("out", "", "directory to restore into")
		fs.Parse(args[1:])
		return restoreOurs(ctx, *name, *key, *out)
	case "tree", "touch":
		fs := flag.NewFlagSet(args[0], flag.ExitOnError)
		files := fs.Int("files", 20000, "number of files")
		mib := fs.Int("mib", 1024, "total MiB")
		percent := fs.Float64("percent", 1, "percent of files to rewrite")
		fs.Parse(args[1:])
		if fs.NArg() != 1 {
			return fmt.Errorf("usage: benchtool %s [flags] DIR", args[0])
		}
		if args[0] == "tree" {
			return tree(fs.Arg(0), *files, *mib)
		}
		return touch(fs.Arg(0), *percent)
	case "walbench":
		fs := flag.NewFlagSet("walbench", flag.ExitOnError)
		n := fs.Int("n", 500, "segments")
		corpus := fs.String("corpus", "", "directory of WAL segments")
		spool := fs.String("spool", "", "spool directory to land them in")
		as := fs.String("as", "", "user to run CMD as")
		key := fs.String("key", "", "snapshot key file: ship encrypted to its recipient, as the agent does")
		fs.Parse(args[1:])
		return walbench(ctx, *corpus, *spool, "bench", *n, *as, *key, fs.Args())
	case "walship":
		fs := flag.NewFlagSet("walship", flag.ExitOnError)
		spool := fs.String("spool", "", "spool directory to ship (emptied)")
		source := fs.String("source", "bench", "WAL source")
		key := fs.String("key", "", "snapshot key file: encrypt to its recipient")
		fs.Parse(args[1:])
		return walShip(ctx, *spool, *source, *key)
	case "pgreplay":
		fs := flag.NewFlagSet("pgreplay", flag.ExitOnError)
		source := fs.String("source", "bench", "WAL source")
		key := fs.String("key", "", "snapshot key file: decrypts the WAL")
		cmd := fs.String("restore-command", "", "restore_command instead of the stage")
		workers := fs.Int("workers", 0, "files staged at once (0: the agent's default)")
		fs.Parse(args[1:])
		if fs.NArg() != 1 {
			return fmt.Errorf("usage: benchtool pgreplay [flags] DATA_DIR")
		}
		return pgReplay(ctx, fs.Arg(0), *source, *key, *cmd, *workers)
	case "tlsproxy":
		if len(args) != 4 {
			return fmt.Errorf("usage: benchtool tlsproxy ADDR TARGET_URL CA_FILE")
		}
		return tlsproxy(args[1], args[2], args[3])
	case "bucketfill", "buckettouch", "bucketmirror", "bucketpass", "bucketdrop":
		return bucketCmd(ctx, args[0], args[1:])
	case "kinefill":
		fs := flag.NewFlagSet("kinefill", flag.ExitOnError)
		mib := fs.Int("mib", 500, "MiB of values to write")
		fs.Parse(args[1:])
		if fs.NArg() != 1 {
			return fmt.Errorf("usage: benchtool kinefill [-mib N] STATE_DB")
		}
		return kineFill(fs.Arg(0), *mib)
	case "kinewrite":
		fs := flag.NewFlagSet("kinewrite", flag.ExitOnError)
		every := fs.Duration("every", 5*time.Millisecond, "pause between writes")
		fs.Parse(args[1:])
		if fs.NArg() != 1 {
			return fmt.Errorf("usage: benchtool kinewrite [-every D] STATE_DB")
		}
		return kineWrite(fs.Arg(0), *every)
	case "sqlitesnap":
		fs := flag.NewFlagSet("sqlitesnap", flag.ExitOnError)
		key := fs.String("key", "", "snapshot key file (age identity)")
		fs.Parse(args[1:])
		if fs.NArg() != 1 {
			return fmt.Errorf("usage: benchtool sqlitesnap [-key FILE] DATA_DIR")
		}
		return sqliteSnap(ctx, fs.Arg(0), *key)
	case "objsnap":
		fs := flag.NewFlagSet("objsnap", flag.ExitOnError)
		n := fs.Int("n", 4096, "ConfigMaps")
		kib := fs.Int("kib", 64, "KiB per ConfigMap")
		cluster := fs.String("cluster", "bench", "cluster id")
		fs.Parse(args[1:])
		if fs.NArg() != 1 {
			return fmt.Errorf("usage: benchtool objsnap [-n N] [-kib K] [-cluster ID] STORE_DIR")
		}
		return objSnap(ctx, fs.Arg(0), *cluster, *n, *kib)
	case "rmprefix":
		if len(args) != 2 {
			return fmt.Errorf("usage: benchtool rmprefix PREFIX")
		}
		return rmprefix(ctx, args[1])
	}
	return fmt.Errorf("unknown command %q", args[0])
}

// fill writes values of 128 KiB: a third random bytes, the rest repeated
// text, so the database compresses about as much as real cluster state.
func fill(ctx context.Context, mib int) error {
	cfg := etcdmember.ClientConfig{
		Endpoint: strings.Split(os.Getenv("ETCDCTL_ENDPOINTS"), ",")[0],
		CA:       os.Getenv("ETCDCTL_CACERT"), Cert: os.Getenv("ETCDCTL_CERT"), Key: os.Getenv("ETCDCTL_KEY"),
	}
	cli, err := cfg.New()
	if err != nil {
		return err
	}
	defer cli.Close()
	rng := rand.New(rand.NewSource(1))
	const size = 128 << 10
	text := strings.Repeat(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"bench","namespace":"default"}}`, size/80+1)
	start := time.Now()
	for i := 0; i < mib*8; i++ {
		v := make([]byte, size)
		rng.Read(v[:size/3])
		copy(v[size/3:], text)
		if _, err := cli.Put(ctx, fmt.Sprintf("/bench/%06d", i), string(v)); err != nil {
			return err
		}
	}
	fmt.Fprintf(os.Stderr, "wrote %d MiB in %s\n", mib, time.Since(start).Round(time.Second))
	return nil
}

func upload(ctx context.Context, file, key string) error {
	store, err := objstore.Open(objstore.Config{}.FromEnv())
	if err != nil {
		return err
	}
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	_, err = store.Put(ctx, key, f, st.Size())
	return err
}
