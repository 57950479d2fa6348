package drill

import (
	"fmt"
	"sync"
	"testing"
)

// kubectl dr drill runs several parts of one drill on the same node at
// once; one that finishes removes the drill's directory when it is empty,
// which must not fail another that is making its own directory under it.
func TestPartsOfOneDrillStartWhileOthersFinish(t *testing.T) {
	e := &Engine{Node: "n1", StateDir: t.TempDir()}
	const id = "drill-20261201-120000"
	var wg sync.WaitGroup
	errs := make(chan error, 400)
	for i := range 400 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, err := e.start(id, LayerBucket, fmt.Sprintf("b%d", i), nil)
			if err != nil {
				errs <- err
				return
			}
			p.finish(false)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("a part could not start while others finished: %v", err)
	}
}
