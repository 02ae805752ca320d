package blobstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// S3 is a Store in a bucket of an S3-compatible object store (AWS S3, MinIO, Ceph,
// gofakes3 in the tests), through minio-go. Each object is two: "data/KEY" with the
// bytes, streamed up in parts of PartSize (the most it holds in memory per Put), and
// "meta/KEY", a small JSON of its Info written once the data is complete, so the checksum
// and size are known: an object is visible (Stat, Get, List) only once its meta exists.
// Concurrent Puts of one key may both succeed (the last meta wins); the callers' keys are
// per run or content-addressed, so that race stores the same thing.
type S3 struct {
	c      *minio.Client
	bucket string
	now    func() time.Time
}

// PartSize is the part size of a streamed upload (S3's minimum is 5 MiB).
const PartSize = 8 << 20

// NewS3FromURL opens the store named by a URL: http(s)://ACCESS:SECRET@HOST[:PORT]/BUCKET
// (path-style addressing, which every S3-compatible server supports). now is the clock
// (nil: time.Now).
func NewS3FromURL(raw string, now func() time.Time) (*S3, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User == nil {
		return nil, errors.New("blobstore: the S3 URL must be http(s)://ACCESS:SECRET@HOST/BUCKET")
	}
	bucket := strings.Trim(u.Path, "/")
	secret, _ := u.User.Password()
	if bucket == "" || strings.Contains(bucket, "/") {
		return nil, fmt.Errorf("blobstore: the S3 URL names no bucket (http(s)://ACCESS:SECRET@%s/BUCKET)", u.Host)
	}
	c, err := minio.New(u.Host, &minio.Options{Creds: credentials.NewStaticV4(u.User.Username(), secret, ""),
		Secure: u.Scheme == "https", BucketLookup: minio.BucketLookupPath})
	if err != nil {
		return nil, fmt.Errorf("blobstore: %w", err) // minio's errors name the host, never the secret
	}
	if now == nil {
		now = time.Now
	}
	return &S3{c: c, bucket: bucket, now: now}, nil
}

// EnsureBucket makes the bucket when it does not exist.
func (s *S3) EnsureBucket(ctx context.Context) error {
	ok, err := s.c.BucketExists(ctx, s.bucket)
	if err == nil && !ok {
		err = s.c.MakeBucket(ctx, s.bucket, minio.MakeBucketOptions{})
	}
	if err != nil {
		return fmt.Errorf("blobstore: bucket %s: %w", s.bucket, err)
	}
	return nil
}

func s3Missing(err error) bool {
	code := minio.ToErrorResponse(err).Code
	return code == "NoSuchKey" || code == "NotFound"
}

// Put implements Store.
func (s *S3) Put(ctx context.Context, key string, r io.Reader, opts PutOptions) (Info, error) {
	if err := checkKey(key); err != nil {
		return Info{}, err
	}
	if opts.Expires.IsZero() {
		return Info{}, errors.New("blobstore: an expiry is required")
	}
	if _, err := s.Stat(ctx, key); err == nil {
		return Info{}, fmt.Errorf("blobstore: %s: %w", key, ErrExists)
	} else if !errors.Is(err, ErrNotFound) {
		return Info{}, err
	}
	lh := newLimitedHash(r, opts.MaxBytes)
	_, err := s.c.PutObject(ctx, s.bucket, "data/"+key, lh, -1, minio.PutObjectOptions{PartSize: PartSize, DisableContentSha256: true,
		ContentType: "application/octet-stream"})
	if err != nil {
		if errors.Is(err, ErrTooLarge) || strings.Contains(err.Error(), ErrTooLarge.Error()) {
			return Info{}, fmt.Errorf("blobstore: put %s: more than %d bytes: %w", key, opts.MaxBytes, ErrTooLarge)
		}
		return Info{}, fmt.Errorf("blobstore: put %s: %w", key, err)
	}
	info := Info{Key: key, Size: lh.n, SHA256: lh.sum(), Created: s.now().UTC(), Expires: opts.Expires.UTC()}
	meta, _ := json.Marshal(info)
	if _, err := s.c.PutObject(ctx, s.bucket, "meta/"+key, bytes.NewReader(meta), int64(len(meta)), minio.PutObjectOptions{ContentType: "application/json"}); err != nil {
		s.c.RemoveObject(context.WithoutCancel(ctx), s.bucket, "data/"+key, minio.RemoveObjectOptions{})
		return Info{}, fmt.Errorf("blobstore: put %s: %w", key, err)
	}
	return info, nil
}

// readMeta reads an object's Info by its meta object's name.
func (s *S3) readMeta(ctx context.Context, name string) (Info, error) {
	o, err := s.c.GetObject(ctx, s.bucket, name, minio.GetObjectOptions{})
	if err != nil {
		return Info{}, err
	}
	defer o.Close()
	b, err := io.ReadAll(io.LimitReader(o, 64<<10))
	if err != nil {
		if s3Missing(err) {
			return Info{}, fmt.Errorf("blobstore: %s: %w", name, ErrNotFound)
		}
		return Info{}, err
	}
	var info Info
	if err := json.Unmarshal(b, &info); err != nil {
		return Info{}, fmt.Errorf("blobstore: %s: %w", name, err)
	}
	return info, nil
}

// Stat implements Store.
func (s *S3) Stat(ctx context.Context, key string) (Info, error) {
	if err := checkKey(key); err != nil {
		return Info{}, err
	}
	info, err := s.readMeta(ctx, "meta/"+key)
	return live(key, info, err, s.now())
}

// Get implements Store.
func (s *S3) Get(ctx context.Context, key string) (io.ReadCloser, Info, error) {
	info, err := s.Stat(ctx, key)
	if err != nil {
		return nil, Info{}, err
	}
	o, err := s.c.GetObject(ctx, s.bucket, "data/"+key, minio.GetObjectOptions{})
	if err != nil {
		return nil, Info{}, fmt.Errorf("blobstore: get %s: %w", key, err)
	}
	return NewVerifyingReader(o, info), info, nil
}

// all lists the Info of the objects under prefix, expired ones included.
func (s *S3) all(ctx context.Context, prefix string) ([]Info, error) {
	var out []Info
	for o := range s.c.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: "meta/" + prefix, Recursive: true}) {
		if o.Err != nil {
			return nil, fmt.Errorf("blobstore: list %s: %w", prefix, o.Err)
		}
		info, err := s.readMeta(ctx, o.Key)
		if errors.Is(err, ErrNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, info)
	}
	return out, nil
}

// List implements Store.
func (s *S3) List(ctx context.Context, prefix string) ([]Info, error) {
	all, err := s.all(ctx, prefix)
	if err != nil {
		return nil, err
	}
	return unexpired(all, prefix, s.now()), nil
}

// Delete implements Store: the meta first, so the object is gone before its data.
func (s *S3) Delete(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	for _, name := range []string{"meta/" + key, "data/" + key} {
		if err := s.c.RemoveObject(ctx, s.bucket, name, minio.RemoveObjectOptions{}); err != nil && !s3Missing(err) {
			return fmt.Errorf("blobstore: delete %s: %w", key, err)
		}
	}
	return nil
}

// Sweep implements Store.
func (s *S3) Sweep(ctx context.Context, now time.Time) (int, error) {
	all, err := s.all(ctx, "")
	if err != nil {
		return 0, err
	}
	return sweep(ctx, s, all, now)
}
