package service

import (
	"cmp"
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"time"
	"unicode"

	"github.com/simpleci/simpleci/libs/platform/auth"
	"github.com/simpleci/simpleci/libs/platform/blobstore"
	apiv1 "github.com/simpleci/simpleci/proto/simpleci/api/v1"
	runnerv1 "github.com/simpleci/simpleci/proto/simpleci/runner/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Files defaults.
const (
	// DefaultCacheQuota is the most a project's caches may hold; past it the oldest
	// entries are evicted.
	DefaultCacheQuota = 10 << 30
	// DefaultSweepInterval is how often expired caches and artifacts are deleted.
	DefaultSweepInterval = time.Minute
	// MaxExpiry bounds the expiry of an entry (the pipeline's limit).
	MaxExpiry = 90 * 24 * time.Hour
	// filesChunk is the size of the data of one streamed message.
	filesChunk = 1 << 20
)

// FilesConfig configures the files part of the log service: the runs' caches and
// artifacts, kept in an object store (blobstore).
type FilesConfig struct {
	Store blobstore.Store
	// Projects resolves a project's name to its id, called with the caller's own token.
	Projects apiv1.ProjectServiceClient
	// CacheQuota bounds a project's caches (default DefaultCacheQuota).
	CacheQuota int64
	// Now is the clock (default time.Now): expiry and the sweep use it.
	Now func() time.Time
}

// Files serves RunnerFilesService (runners, under a files grant) and FileService (users).
type Files struct {
	apiv1.UnimplementedFileServiceServer
	runnerv1.UnimplementedRunnerFilesServiceServer
	cfg    FilesConfig
	secret string
	log    *slog.Logger
}

// NewFiles returns the files service. secret is the deployment secret under which the
// scheduler signs files grants.
func NewFiles(cfg FilesConfig, secret string, log *slog.Logger) (*Files, error) {
	if cfg.Store == nil || secret == "" {
		return nil, errors.New("files: a store and the deployment secret are required")
	}
	cfg.CacheQuota = cmp.Or(cfg.CacheQuota, DefaultCacheQuota)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if log == nil {
		log = slog.Default()
	}
	return &Files{cfg: cfg, secret: secret, log: log.With("service", "log", "part", "files")}, nil
}

// Register adds FileService and RunnerFilesService to a gRPC server.
func (f *Files) Register(g *grpc.Server) {
	apiv1.RegisterFileServiceServer(g, f)
	runnerv1.RegisterRunnerFilesServiceServer(g, f)
}

// Sweep deletes expired entries every interval until ctx ends.
func (f *Files) Sweep(ctx context.Context, interval time.Duration) {
	interval = cmp.Or(interval, DefaultSweepInterval)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		sctx, cancel := context.WithTimeout(ctx, interval*5)
		n, err := f.cfg.Store.Sweep(sctx, f.cfg.Now())
		cancel()
		switch {
		case err != nil:
			f.log.Warn("sweep expired caches and artifacts", "err", err)
		case n > 0:
			f.log.Info("expired caches and artifacts deleted", "count", n)
		}
	}
}

func cachePrefix(org, project string) string {
	return "cache/" + blobstore.EscapeSegment(org) + "/" + blobstore.EscapeSegment(project) + "/"
}

func cacheKey(org, project, scope, key string) string {
	return cachePrefix(org, project) + blobstore.EscapeSegment(scope) + "/" + blobstore.EscapeSegment(key)
}

func artifactPrefix(org, run string) string {
	return "artifacts/" + blobstore.EscapeSegment(org) + "/" + blobstore.EscapeSegment(run) + "/"
}

// checkKey refuses a cache key or artifact name the pipeline would not render.
func checkKey(what, k string) error {
	if strings.TrimSpace(k) == "" || len(k) > 256 {
		return status.Errorf(codes.InvalidArgument, "%s %q: 1 to 256 bytes", what, k)
	}
	for _, r := range k {
		if !unicode.IsPrint(r) {
			return status.Errorf(codes.InvalidArgument, "%s %q: the character %q is not allowed", what, k, r)
		}
	}
	return nil
}

// grant verifies a runner's files grant.
func (f *Files) grant(ctx context.Context, g *runnerv1.FilesGrant) error {
	runner, ok := auth.Runner(ctx)
	if !ok {
		return status.Error(codes.PermissionDenied, "only runners reach caches and artifacts this way, with their runner token")
	}
	if err := auth.VerifyFilesGrant(f.secret, g, runner, time.Now()); err != nil {
		f.log.Warn("files grant refused", "runner", runner, "run", g.GetRunId(), "err", err)
		return status.Errorf(codes.PermissionDenied, "files: %v", err)
	}
	return nil
}

// RestoreCache implements RunnerFilesService.
func (f *Files) RestoreCache(req *runnerv1.RestoreCacheRequest, stream grpc.ServerStreamingServer[runnerv1.FilesData]) error {
	ctx := stream.Context()
	g := req.GetGrant()
	if err := f.grant(ctx, g); err != nil {
		return err
	}
	if err := checkKey("cache key", req.GetKey()); err != nil {
		return err
	}
	for _, p := range req.GetRestoreKeys() {
		if err := checkKey("restore key", p); err != nil {
			return err
		}
	}
	info, scope, prefix, err := f.findCache(ctx, g, req.GetKey(), req.GetRestoreKeys())
	if err != nil {
		return err
	}
	rc, info, err := f.cfg.Store.Get(ctx, info.Key)
	if err != nil {
		return storeError(err)
	}
	defer rc.Close()
	key, _ := blobstore.UnescapeSegment(info.Key[strings.LastIndexByte(info.Key, '/')+1:])
	hdr := &runnerv1.FilesHeader{Key: key, Scope: scope, Prefix: prefix, Size: info.Size, Sha256: info.SHA256}
	return sendChunks(rc, func(data []byte, first bool) error {
		m := &runnerv1.FilesData{Data: data}
		if first {
			m.Header = hdr
		}
		return stream.Send(m)
	})
}

// findCache finds the entry of key in the grant's read scopes, in order, else the newest
// entry of the first restore prefix that matches any (a scope earlier in the grant's list
// first).
func (f *Files) findCache(ctx context.Context, g *runnerv1.FilesGrant, key string, prefixes []string) (blobstore.Info, string, string, error) {
	for _, scope := range g.GetReadScopes() {
		info, err := f.cfg.Store.Stat(ctx, cacheKey(g.GetOrgId(), g.GetProjectId(), scope, key))
		if err == nil {
			return info, scope, "", nil
		}
		if !errors.Is(err, blobstore.ErrNotFound) {
			return info, "", "", storeError(err)
		}
	}
	for _, p := range prefixes {
		for _, scope := range g.GetReadScopes() {
			infos, err := f.cfg.Store.List(ctx, cacheKey(g.GetOrgId(), g.GetProjectId(), scope, p))
			if err != nil {
				return blobstore.Info{}, "", "", storeError(err)
			}
			if len(infos) > 0 {
				return infos[0], scope, p, nil
			}
		}
	}
	return blobstore.Info{}, "", "", status.Errorf(codes.NotFound, "no cache entry for key %q or its restore keys", key)
}

// sendChunks sends r in chunks of filesChunk; an empty r is sent as one empty chunk.
func sendChunks(r io.Reader, send func(data []byte, first bool) error) error {
	buf := make([]byte, filesChunk)
	first := true
	for {
		n, err := io.ReadFull(r, buf)
		if n > 0 || first {
			if serr := send(buf[:n], first); serr != nil {
				return serr
			}
			first = false
		}
		switch {
		case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
			return nil
		case errors.Is(err, blobstore.ErrChecksum):
			return status.Errorf(codes.DataLoss, "%v", err)
		case err != nil:
			return storeError(err)
		}
	}
}

// PutFiles implements RunnerFilesService.
func (f *Files) PutFiles(stream grpc.ClientStreamingServer[runnerv1.PutFilesRequest, runnerv1.PutFilesResponse]) error {
	ctx := stream.Context()
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	g := first.GetGrant()
	if err := f.grant(ctx, g); err != nil {
		return err
	}
	if err := checkKey(first.GetKind()+" key", first.GetKey()); err != nil {
		return err
	}
	expiry := first.GetExpiry().AsDuration()
	if expiry < time.Minute || expiry > MaxExpiry {
		return status.Errorf(codes.InvalidArgument, "expiry %s: between a minute and %s", expiry, MaxExpiry)
	}
	var key string
	switch first.GetKind() {
	case "cache":
		key = cacheKey(g.GetOrgId(), g.GetProjectId(), g.GetWriteScope(), first.GetKey())
	case "artifact":
		key = artifactPrefix(g.GetOrgId(), g.GetRunId()) + blobstore.EscapeSegment(first.GetKey())
	default:
		return status.Errorf(codes.InvalidArgument, "kind %q: cache or artifact", first.GetKind())
	}
	r := &recvReader{buf: first.GetData(), recv: func() ([]byte, error) {
		m, err := stream.Recv()
		return m.GetData(), err
	}}
	info, err := f.cfg.Store.Put(ctx, key, r, blobstore.PutOptions{Expires: f.cfg.Now().Add(expiry), MaxBytes: g.GetMaxEntryBytes()})
	if err != nil {
		return storeError(err)
	}
	if first.GetKind() == "cache" {
		gone, err := blobstore.Evict(ctx, f.cfg.Store, cachePrefix(g.GetOrgId(), g.GetProjectId()), f.cfg.CacheQuota, key)
		if err != nil {
			f.log.Warn("evict caches over the project's quota", "project", g.GetProjectId(), "err", err)
		}
		for _, in := range gone {
			f.log.Info("cache entry evicted: the project's caches are over the quota", "project", g.GetProjectId(), "entry", in.Key, "bytes", in.Size, "quota", f.cfg.CacheQuota)
		}
	}
	return stream.SendAndClose(&runnerv1.PutFilesResponse{Size: info.Size, Sha256: info.SHA256, ExpiresAt: timestamppb.New(info.Expires)})
}

// recvReader reads the data of a client stream.
type recvReader struct {
	buf  []byte
	recv func() ([]byte, error)
}

func (r *recvReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		b, err := r.recv()
		if err != nil {
			return 0, err // io.EOF at the end of the stream
		}
		r.buf = b
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// storeError turns a store's error into a status.
func storeError(err error) error {
	if _, ok := status.FromError(err); ok {
		return err
	}
	switch {
	case errors.Is(err, blobstore.ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, blobstore.ErrExists):
		return status.Error(codes.AlreadyExists, err.Error())
	case errors.Is(err, blobstore.ErrTooLarge):
		return status.Error(codes.ResourceExhausted, err.Error())
	case errors.Is(err, blobstore.ErrChecksum):
		return status.Error(codes.DataLoss, err.Error())
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.FromContextError(err).Err()
	}
	return status.Errorf(codes.Internal, "object store: %v", err)
}

func artifactOf(info blobstore.Info) *apiv1.Artifact {
	name, _ := blobstore.UnescapeSegment(info.Key[strings.LastIndexByte(info.Key, '/')+1:])
	return &apiv1.Artifact{Name: name, Size: info.Size, Sha256: info.SHA256, CreatedAt: timestamppb.New(info.Created), ExpiresAt: timestamppb.New(info.Expires)}
}

// ListArtifacts implements FileService. The gateway checked that the caller sees the run.
func (f *Files) ListArtifacts(ctx context.Context, req *apiv1.ListArtifactsRequest) (*apiv1.ListArtifactsResponse, error) {
	org, err := auth.RequireOrg(ctx)
	if err != nil {
		return nil, err
	}
	infos, err := f.cfg.Store.List(ctx, artifactPrefix(org, req.GetRun()))
	if err != nil {
		return nil, storeError(err)
	}
	out := &apiv1.ListArtifactsResponse{}
	for _, in := range infos {
		out.Artifacts = append(out.Artifacts, artifactOf(in))
	}
	return out, nil
}

// DownloadArtifact implements FileService.
func (f *Files) DownloadArtifact(req *apiv1.DownloadArtifactRequest, stream grpc.ServerStreamingServer[apiv1.ArtifactData]) error {
	ctx := stream.Context()
	org, err := auth.RequireOrg(ctx)
	if err != nil {
		return err
	}
	if checkKey("artifact", req.GetName()) != nil { // no artifact can have such a name
		return status.Errorf(codes.NotFound, "run %s has no artifact %q", req.GetRun(), req.GetName())
	}
	rc, info, err := f.cfg.Store.Get(ctx, artifactPrefix(org, req.GetRun())+blobstore.EscapeSegment(req.GetName()))
	if err != nil {
		if errors.Is(err, blobstore.ErrNotFound) {
			return status.Errorf(codes.NotFound, "run %s has no artifact %q (or it expired)", req.GetRun(), req.GetName())
		}
		return storeError(err)
	}
	defer rc.Close()
	a := artifactOf(info)
	return sendChunks(rc, func(data []byte, first bool) error {
		m := &apiv1.ArtifactData{Data: data}
		if first {
			m.Artifact = a
		}
		return stream.Send(m)
	})
}

// project resolves the request's project with the caller's own token, so the project
// service decides what the caller sees (another organisation's project: NotFound).
func (f *Files) project(ctx context.Context, project string) (string, string, error) {
	org, err := auth.RequireOrg(ctx)
	if err != nil {
		return "", "", err
	}
	if f.cfg.Projects == nil {
		return "", "", status.Error(codes.Unavailable, "files: no project service")
	}
	md, _ := metadata.FromIncomingContext(ctx)
	pctx, cancel := context.WithTimeout(metadata.NewOutgoingContext(ctx, metadata.Pairs("authorization", strings.Join(md.Get("authorization"), ""))), 10*time.Second)
	defer cancel()
	p, err := f.cfg.Projects.GetProject(pctx, &apiv1.GetProjectRequest{Project: project})
	if err != nil {
		return "", "", err
	}
	return org, p.GetId(), nil
}

// cacheEntryOf returns the scope and key of a cache object.
func cacheEntryOf(in blobstore.Info) (scope, key string) {
	segs := strings.Split(in.Key, "/")
	scope, _ = blobstore.UnescapeSegment(segs[len(segs)-2])
	key, _ = blobstore.UnescapeSegment(segs[len(segs)-1])
	return scope, key
}

// caches lists the cache entries of the caller's project, newest first.
func (f *Files) caches(ctx context.Context, project string) ([]blobstore.Info, error) {
	org, proj, err := f.project(ctx, project)
	if err != nil {
		return nil, err
	}
	infos, err := f.cfg.Store.List(ctx, cachePrefix(org, proj))
	if err != nil {
		return nil, storeError(err)
	}
	return infos, nil
}

// ListCaches implements FileService.
func (f *Files) ListCaches(ctx context.Context, req *apiv1.ListCachesRequest) (*apiv1.ListCachesResponse, error) {
	infos, err := f.caches(ctx, req.GetProject())
	if err != nil {
		return nil, err
	}
	out := &apiv1.ListCachesResponse{}
	for _, in := range infos {
		scope, key := cacheEntryOf(in)
		out.Entries = append(out.Entries, &apiv1.CacheEntry{Key: key, Scope: scope, Size: in.Size, CreatedAt: timestamppb.New(in.Created), ExpiresAt: timestamppb.New(in.Expires)})
		out.TotalBytes += in.Size
	}
	return out, nil
}

// DeleteCache implements FileService.
func (f *Files) DeleteCache(ctx context.Context, req *apiv1.DeleteCacheRequest) (*apiv1.DeleteCacheResponse, error) {
	infos, err := f.caches(ctx, req.GetProject())
	if err != nil {
		return nil, err
	}
	out := &apiv1.DeleteCacheResponse{}
	for _, in := range infos {
		scope, key := cacheEntryOf(in)
		if key != req.GetKey() || (req.GetScope() != "" && scope != req.GetScope()) {
			continue
		}
		if err := f.cfg.Store.Delete(ctx, in.Key); err != nil {
			return nil, storeError(err)
		}
		out.Deleted++
	}
	if out.Deleted == 0 {
		return nil, status.Errorf(codes.NotFound, "project %s has no cache entry %q", req.GetProject(), req.GetKey())
	}
	return out, nil
}
