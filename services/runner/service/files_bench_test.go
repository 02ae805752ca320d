package service

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/simpleci/simpleci/libs/engine/archive"
	"github.com/simpleci/simpleci/libs/platform/blobstore"
)

// BenchmarkCache1GiB saves and restores a cache of 1 GiB (256 files of 4 MiB of
// incompressible generated data, the worst case for zstd) through the path of a
// cache-files step, minus the network: tar+zstd packing streamed through a pipe into the
// Disk store (sha256 on the way), then read back (checksum verified) and unpacked. It
// reports MB/s of each direction and the process's peak RSS during them (VmHWM, reset
// before): memory must stay flat, never near the data's size.
//
//	go test -run '^$' -bench BenchmarkCache1GiB -benchtime 1x ./services/runner/service
func BenchmarkCache1GiB(b *testing.B) {
	const files, fileSize = 256, 4 << 20
	dir := b.TempDir()
	src := filepath.Join(dir, "ws")
	rng := rand.NewChaCha8([32]byte{1})
	buf := make([]byte, 1<<20)
	for i := range files {
		p := filepath.Join(src, "deps", fmt.Sprintf("d%02d", i%16), fmt.Sprintf("f%03d", i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		f, err := os.Create(p)
		if err != nil {
			b.Fatal(err)
		}
		for n := 0; n < fileSize; n += len(buf) {
			rng.Read(buf)
			f.Write(buf)
		}
		f.Close()
	}
	total := int64(files * fileSize)
	store, err := blobstore.NewDisk(filepath.Join(dir, "store"), nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	resetPeakRSS(b)
	base := rssKiB(b, "VmRSS")
	b.ResetTimer()
	var save, restore time.Duration
	for i := range b.N {
		key := "cache/o/p/branch:main/deps-" + strconv.Itoa(i)
		start := time.Now()
		pr, pw := io.Pipe()
		go func() {
			_, err := archive.Pack(pw, src, []string{"deps"}, nil)
			pw.CloseWithError(err)
		}()
		if _, err := store.Put(ctx, key, pr, blobstore.PutOptions{Expires: time.Now().Add(time.Hour)}); err != nil {
			b.Fatal(err)
		}
		save += time.Since(start)
		start = time.Now()
		rc, _, err := store.Get(ctx, key)
		if err != nil {
			b.Fatal(err)
		}
		out := filepath.Join(dir, "out"+strconv.Itoa(i))
		os.Mkdir(out, 0o755)
		st, err := archive.Unpack(rc, out, archive.Limits{}, nil)
		rc.Close()
		if err != nil || st.Bytes != total {
			b.Fatalf("unpacked %+v: %v", st, err)
		}
		restore += time.Since(start)
		b.StopTimer()
		os.RemoveAll(out)
		store.Delete(ctx, key)
		b.StartTimer()
	}
	peak := rssKiB(b, "VmHWM")
	mb := float64(total) * float64(b.N) / 1e6
	b.ReportMetric(mb/save.Seconds(), "save-MB/s")
	b.ReportMetric(mb/restore.Seconds(), "restore-MB/s")
	b.ReportMetric(float64(peak)/1024, "peak-RSS-MiB")
	b.ReportMetric(float64(base)/1024, "start-RSS-MiB")
}

// resetPeakRSS resets the process's VmHWM (Linux: clear_refs 5).
func resetPeakRSS(b *testing.B) {
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		b.Logf("cannot reset the peak RSS (%v): it counts from the process's start", err)
	}
}

// rssKiB reads a field of /proc/self/status, in KiB.
func rssKiB(b *testing.B, field string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	b.Fatalf("no %s in /proc/self/status", field)
	return 0
}
