package main

import (
	"context"
	"fmt"
	"io/fs"
	"math/rand"
	"os"
	"path/filepath"
	"sort"

	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
)

// tree writes n files totalling about mib MiB under dir, sized like a
// volume's: most small, a few large; half of each file random, half text,
// so it compresses somewhat, as real data does.
func tree(dir string, n, mib int) error {
	rng := rand.New(rand.NewSource(7))
	total := int64(mib) << 20
	// 1% of the files hold half the bytes.
	large := max(n/100, 1)
	largeSize := total / 2 / int64(large)
	smallSize := total / 2 / int64(n-large)
	for i := range n {
		size := smallSize/2 + rng.Int63n(smallSize+1)
		if i < large {
			size = largeSize
		}
		p := filepath.Join(dir, fmt.Sprintf("pvc-%04d_bench_vol-%d", i%20, i%20), fmt.Sprintf("d%03d", (i/20)%50), fmt.Sprintf("f%06d", i))
		if err := writeRandom(rng, p, size); err != nil {
			return err
		}
	}
	return nil
}

func writeRandom(rng *rand.Rand, p string, size int64) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	buf := make([]byte, size)
	rng.Read(buf[:size/2])
	for i := size / 2; i < size; i++ {
		buf[i] = "kubectl dr bench "[i%17]
	}
	return os.WriteFile(p, buf, 0o644)
}

// touch rewrites percent of the files (every 100/percent-th, in path
// order) with new content of the same size.
func touch(dir string, percent float64) error {
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		return err
	}
	sort.Strings(files)
	rng := rand.New(rand.NewSource(rand.Int63()))
	step := max(int(100/percent), 1)
	for i := 0; i < len(files); i += step {
		st, err := os.Stat(files[i])
		if err != nil {
			return err
		}
		if err := writeRandom(rng, files[i], st.Size()); err != nil {
			return err
		}
	}
	return nil
}

// rmprefix deletes every object under prefix of the store in DR_STORE.
func rmprefix(ctx context.Context, prefix string) error {
	store, err := objstore.Open(objstore.Config{}.FromEnv())
	if err != nil {
		return err
	}
	objs, err := store.List(ctx, prefix)
	if err != nil {
		return err
	}
	for _, o := range objs {
		if err := store.Delete(ctx, o.Key); err != nil {
			return err
		}
	}
	return nil
}
