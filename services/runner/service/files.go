package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/simpleci/simpleci/libs/engine"
	runnerv1 "github.com/simpleci/simpleci/proto/simpleci/runner/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// filesChunk is the data of one PutFiles message.
const filesChunk = 1 << 20

// jobFiles is the engine's Files of one job: the log service's RunnerFilesService under
// the job's files grant. The runner holds no credentials of the object store; the grant
// names the project and the scopes the job may read and write (ADR 31).
type jobFiles struct {
	c     runnerv1.RunnerFilesServiceClient
	grant *runnerv1.FilesGrant
}

// files returns the job's Files, nil when the runner or the job has none.
func (r *Runner) files(job *runnerv1.Job) engine.Files {
	if r.cfg.Files == nil || job.GetFilesGrant() == nil {
		return nil
	}
	return &jobFiles{c: r.cfg.Files, grant: job.GetFilesGrant()}
}

// RestoreCache implements engine.Files.
func (f *jobFiles) RestoreCache(ctx context.Context, key string, restore []string) (io.ReadCloser, engine.CacheEntry, error) {
	ctx, cancel := context.WithCancel(ctx)
	stream, err := f.c.RestoreCache(ctx, &runnerv1.RestoreCacheRequest{Grant: f.grant, Key: key, RestoreKeys: restore})
	if err != nil {
		cancel()
		return nil, engine.CacheEntry{}, filesError(err)
	}
	first, err := stream.Recv()
	if err != nil {
		cancel()
		return nil, engine.CacheEntry{}, filesError(err)
	}
	h := first.GetHeader()
	rc := &streamReader{buf: first.GetData(), recv: func() ([]byte, error) {
		m, err := stream.Recv()
		if err != nil && !errors.Is(err, io.EOF) {
			err = filesError(err)
		}
		return m.GetData(), err
	}, cancel: cancel}
	return rc, engine.CacheEntry{Key: h.GetKey(), Prefix: h.GetPrefix(), Size: h.GetSize()}, nil
}

// Put implements engine.Files.
func (f *jobFiles) Put(ctx context.Context, kind, key string, expiry time.Duration, r io.Reader) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := f.c.PutFiles(ctx)
	if err != nil {
		return filesError(err)
	}
	buf := make([]byte, filesChunk)
	first := &runnerv1.PutFilesRequest{Grant: f.grant, Kind: kind, Key: key, Expiry: durationpb.New(expiry)}
	for {
		n, rerr := io.ReadFull(r, buf)
		if n > 0 || first != nil {
			m := first
			if m == nil {
				m = &runnerv1.PutFilesRequest{}
			}
			first = nil
			m.Data = buf[:n]
			if err := stream.Send(m); err != nil {
				// The service ended the call (a refusal): its status says why.
				_, err = stream.CloseAndRecv()
				return filesError(err)
			}
		}
		if errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF) {
			break
		}
		if rerr != nil {
			return rerr // the packing's error; cancel ends the call, nothing is stored
		}
	}
	_, err = stream.CloseAndRecv()
	return filesError(err)
}

// filesError maps the service's statuses to the engine's errors and short messages.
func filesError(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	switch st.Code() {
	case codes.NotFound:
		return engine.ErrCacheMiss
	case codes.AlreadyExists:
		return engine.ErrCacheExists
	case codes.Unimplemented:
		return errors.New("this deployment keeps no caches or artifacts (the log service has neither --files-store nor a data directory)")
	}
	return fmt.Errorf("%s", st.Message())
}

// streamReader reads the data of a server stream.
type streamReader struct {
	buf    []byte
	recv   func() ([]byte, error)
	cancel context.CancelFunc
}

func (s *streamReader) Read(p []byte) (int, error) {
	for len(s.buf) == 0 {
		b, err := s.recv()
		if err != nil {
			return 0, err
		}
		s.buf = b
	}
	n := copy(p, s.buf)
	s.buf = s.buf[n:]
	return n, nil
}

func (s *streamReader) Close() error { s.cancel(); return nil }
