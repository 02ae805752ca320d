package service_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/simpleci/simpleci/libs/platform/auth"
	"github.com/simpleci/simpleci/libs/platform/blobstore"
	apiv1 "github.com/simpleci/simpleci/proto/simpleci/api/v1"
	authv1 "github.com/simpleci/simpleci/proto/simpleci/auth/v1"
	runnerv1 "github.com/simpleci/simpleci/proto/simpleci/runner/v1"
	"github.com/simpleci/simpleci/services/log/service"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// testClock is a controlled clock.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// fakeServerStream is the server side of a stream in a test.
type fakeServerStream[Req, Res any] struct {
	grpc.ServerStream
	ctx  context.Context
	in   []*Req
	out  []*Res
	resp *Res
}

func (f *fakeServerStream[Req, Res]) Context() context.Context { return f.ctx }
func (f *fakeServerStream[Req, Res]) Send(m *Res) error {
	f.out = append(f.out, proto.Clone(any(m).(proto.Message)).(any).(*Res))
	return nil
}
func (f *fakeServerStream[Req, Res]) Recv() (*Req, error) {
	if len(f.in) == 0 {
		return nil, io.EOF
	}
	m := f.in[0]
	f.in = f.in[1:]
	return m, nil
}
func (f *fakeServerStream[Req, Res]) SendAndClose(m *Res) error { f.resp = m; return nil }

type filesEnv struct {
	t     *testing.T
	files *service.Files
	store *blobstore.Disk
	clock *testClock
}

func newFilesEnv(t *testing.T, quota int64) *filesEnv {
	c := &testClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	store, err := blobstore.NewDisk(t.TempDir(), c.now)
	if err != nil {
		t.Fatal(err)
	}
	f, err := service.NewFiles(service.FilesConfig{Store: store, CacheQuota: quota, Now: c.now}, testSecret, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return &filesEnv{t: t, files: f, store: store, clock: c}
}

func runnerCtx(name string) context.Context {
	return auth.WithPrincipal(context.Background(), &authv1.Principal{Login: "runner:" + name, Runner: name})
}

func userCtx(org string) context.Context {
	return auth.WithPrincipal(context.Background(), &authv1.Principal{Login: "alice", OrgId: org, Role: "viewer"})
}

func (e *filesEnv) grant(run, write string, read ...string) *runnerv1.FilesGrant {
	g := &runnerv1.FilesGrant{RunId: run, Attempt: 1, Runner: "runner-1", OrgId: "org1", ProjectId: "p1", WriteScope: write,
		ReadScopes: read, MaxEntryBytes: 8 << 20, ExpiresAt: timestamppb.New(time.Now().Add(time.Hour))}
	if err := auth.SignFilesGrant(testSecret, g); err != nil {
		e.t.Fatal(err)
	}
	return g
}

func (e *filesEnv) put(g *runnerv1.FilesGrant, kind, key string, expiry time.Duration, data []byte) (*runnerv1.PutFilesResponse, error) {
	var in []*runnerv1.PutFilesRequest
	in = append(in, &runnerv1.PutFilesRequest{Grant: g, Kind: kind, Key: key, Expiry: durationpb.New(expiry)})
	for len(data) > 0 {
		n := min(len(data), 100<<10)
		in = append(in, &runnerv1.PutFilesRequest{Data: data[:n]})
		data = data[n:]
	}
	s := &fakeServerStream[runnerv1.PutFilesRequest, runnerv1.PutFilesResponse]{ctx: runnerCtx("runner-1"), in: in}
	err := e.files.PutFiles(s)
	return s.resp, err
}

func (e *filesEnv) restore(g *runnerv1.FilesGrant, key string, prefixes ...string) (*runnerv1.FilesHeader, []byte, error) {
	s := &fakeServerStream[runnerv1.RestoreCacheRequest, runnerv1.FilesData]{ctx: runnerCtx("runner-1")}
	err := e.files.RestoreCache(&runnerv1.RestoreCacheRequest{Grant: g, Key: key, RestoreKeys: prefixes}, s)
	if err != nil {
		return nil, nil, err
	}
	var b bytes.Buffer
	for _, m := range s.out {
		b.Write(m.GetData())
	}
	return s.out[0].GetHeader(), b.Bytes(), nil
}

func (e *filesEnv) download(org, run, name string) (*apiv1.Artifact, []byte, error) {
	s := &fakeServerStream[apiv1.DownloadArtifactRequest, apiv1.ArtifactData]{ctx: userCtx(org)}
	if err := e.files.DownloadArtifact(&apiv1.DownloadArtifactRequest{Run: run, Name: name}, s); err != nil {
		return nil, nil, err
	}
	var b bytes.Buffer
	for _, m := range s.out {
		b.Write(m.GetData())
	}
	return s.out[0].GetArtifact(), b.Bytes(), nil
}

// An artifact stored by a run is listed with its size and expiry, downloads with
// identical bytes, and is gone once it expired and the sweep ran (controlled clock).
func TestArtifacts(t *testing.T) {
	e := newFilesEnv(t, 0)
	data := make([]byte, 3<<20+5)
	rand.Read(data)
	g := e.grant("run1", "branch:main", "branch:main")
	resp, err := e.put(g, "artifact", "dist", time.Hour, data)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	if resp.GetSize() != int64(len(data)) || resp.GetSha256() != hex.EncodeToString(sum[:]) {
		t.Fatalf("stored %v", resp)
	}
	list, err := e.files.ListArtifacts(userCtx("org1"), &apiv1.ListArtifactsRequest{Run: "run1"})
	if err != nil || len(list.GetArtifacts()) != 1 {
		t.Fatalf("list: %v %v", list, err)
	}
	a := list.GetArtifacts()[0]
	if a.GetName() != "dist" || a.GetSize() != int64(len(data)) || !a.GetExpiresAt().AsTime().Equal(e.clock.now().Add(time.Hour)) {
		t.Errorf("listed %v", a)
	}
	_, back, err := e.download("org1", "run1", "dist")
	if err != nil || !bytes.Equal(back, data) {
		t.Fatalf("download: %d bytes, %v", len(back), err)
	}
	// Another organisation sees nothing of it.
	if _, _, err := e.download("org2", "run1", "dist"); status.Code(err) != codes.NotFound {
		t.Errorf("another organisation's download: %v", err)
	}
	e.clock.add(time.Hour)
	if _, _, err := e.download("org1", "run1", "dist"); status.Code(err) != codes.NotFound {
		t.Errorf("download after expiry: %v", err)
	}
	if n, err := e.store.Sweep(context.Background(), e.clock.now()); err != nil || n != 1 {
		t.Errorf("sweep: %d %v", n, err)
	}
	list, _ = e.files.ListArtifacts(userCtx("org1"), &apiv1.ListArtifactsRequest{Run: "run1"})
	if len(list.GetArtifacts()) != 0 {
		t.Errorf("listed after expiry: %v", list)
	}
}

// Cache scopes follow the branch: a pull request reads its base branch's caches and its
// own, and writes only its own; keys are immutable; a grant cannot be altered.
func TestCacheScopes(t *testing.T) {
	e := newFilesEnv(t, 0)
	main := e.grant("run1", "branch:main", "branch:main")
	pr := e.grant("run2", "pr:7", "pr:7", "branch:main")
	if _, _, err := e.restore(main, "deps-1", "deps-"); status.Code(err) != codes.NotFound {
		t.Fatalf("restore from nothing: %v", err)
	}
	if _, err := e.put(main, "cache", "deps-1", time.Hour, []byte("main's")); err != nil {
		t.Fatal(err)
	}
	if _, err := e.put(main, "cache", "deps-1", time.Hour, []byte("again")); status.Code(err) != codes.AlreadyExists {
		t.Fatalf("a second put of a key: %v", err)
	}
	h, data, err := e.restore(pr, "deps-1")
	if err != nil || string(data) != "main's" || h.GetScope() != "branch:main" || h.GetPrefix() != "" {
		t.Fatalf("the pull request's restore of the base branch's key: %v %q %v", h, data, err)
	}
	// The pull request saves under its own scope, even with main's key.
	if _, err := e.put(pr, "cache", "deps-1", time.Hour, []byte("poison")); err != nil {
		t.Fatalf("a pull request's put: %v", err)
	}
	e.clock.add(time.Second)
	if _, err := e.put(pr, "cache", "deps-2", time.Hour, []byte("pr's")); err != nil {
		t.Fatal(err)
	}
	if _, data, err := e.restore(main, "deps-1"); err != nil || string(data) != "main's" {
		t.Fatalf("main after the pull request: %q %v", data, err)
	}
	if h, data, err := e.restore(main, "deps-9", "deps-"); err != nil || string(data) != "main's" || h.GetKey() != "deps-1" || h.GetPrefix() != "deps-" {
		t.Fatalf("main's prefix restore sees the pull request's entry: %v %q %v", h, data, err)
	}
	if h, data, err := e.restore(pr, "deps-9", "deps-"); err != nil || string(data) != "pr's" || h.GetScope() != "pr:7" {
		t.Fatalf("the pull request's prefix restore: %v %q %v", h, data, err)
	}
	// A runner that widens its grant is refused.
	forged := proto.Clone(pr).(*runnerv1.FilesGrant)
	forged.WriteScope = "branch:main"
	if _, err := e.put(forged, "cache", "deps-3", time.Hour, []byte("x")); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("a forged grant: %v", err)
	}
	// The caches API lists every scope's entries.
	list, err := e.store.List(context.Background(), "cache/")
	if err != nil || len(list) != 3 {
		t.Fatalf("stored %v %v", list, err)
	}
	// Too large: nothing stored.
	if _, err := e.put(main, "cache", "big", time.Hour, make([]byte, 9<<20)); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("an entry over the tier's limit: %v", err)
	}
}

// Past the project's quota the oldest entries are evicted.
func TestCacheQuota(t *testing.T) {
	e := newFilesEnv(t, 250)
	g := e.grant("run1", "branch:main", "branch:main")
	for _, k := range []string{"a", "b", "c"} {
		if _, err := e.put(g, "cache", k, time.Hour, bytes.Repeat([]byte(k), 100)); err != nil {
			t.Fatal(err)
		}
		e.clock.add(time.Second)
	}
	if _, _, err := e.restore(g, "a"); status.Code(err) != codes.NotFound {
		t.Errorf("the oldest entry survived the quota: %v", err)
	}
	for _, k := range []string{"b", "c"} {
		if _, _, err := e.restore(g, k); err != nil {
			t.Errorf("entry %s: %v", k, err)
		}
	}
}

// The periodic sweep deletes expired entries (not only hides them): with the clock set
// back, they stay gone.
func TestSweepLoop(t *testing.T) {
	e := newFilesEnv(t, 0)
	g := e.grant("run1", "branch:main", "branch:main")
	if _, err := e.put(g, "artifact", "a", time.Minute, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := e.put(g, "artifact", "b", time.Hour, []byte("y")); err != nil {
		t.Fatal(err)
	}
	e.clock.add(2 * time.Minute)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); e.files.Sweep(ctx, 10*time.Millisecond) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		e.clock.add(-2 * time.Minute) // as before the expiry: only a deleted entry is missing
		infos, err := e.store.List(context.Background(), "artifacts/")
		e.clock.add(2 * time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if len(infos) == 1 && strings.HasSuffix(infos[0].Key, "/b") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the sweep: %v", infos)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A stored object whose bytes changed is not served: the checksum recorded at the put
// fails at the end of the stream (DataLoss).
func TestChecksumOnRestore(t *testing.T) {
	e := newFilesEnv(t, 0)
	dir := t.TempDir()
	store, err := blobstore.NewDisk(dir, e.clock.now)
	if err != nil {
		t.Fatal(err)
	}
	f, err := service.NewFiles(service.FilesConfig{Store: store, Now: e.clock.now}, testSecret, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	e.files, e.store = f, store
	g := e.grant("run1", "branch:main", "branch:main")
	if _, err := e.put(g, "cache", "deps", time.Hour, []byte("the bytes stored")); err != nil {
		t.Fatal(err)
	}
	data, _ := filepath.Glob(filepath.Join(dir, "objects", "*.data"))
	if len(data) != 1 {
		t.Fatalf("objects %q", data)
	}
	if err := os.WriteFile(data[0], []byte("the bytes STORED"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.restore(g, "deps"); status.Code(err) != codes.DataLoss {
		t.Fatalf("restore of an altered entry: %v", err)
	}
}
