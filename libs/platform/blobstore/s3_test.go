package blobstore

import (
	"context"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/simpleci/simpleci/libs/platform/id"
)

// TestS3 runs the Store tests against a real S3-compatible server: the one
// deploy/local/s3.sh starts (make test sets SIMPLECI_TEST_S3_URL), in a bucket of its own.
func TestS3(t *testing.T) {
	raw := os.Getenv("SIMPLECI_TEST_S3_URL")
	if raw == "" {
		t.Skip("SIMPLECI_TEST_S3_URL is not set (deploy/local/s3.sh start; deploy/local/s3.sh url)")
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/t" + strings.ToLower(id.New())
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	s, err := NewS3FromURL(u.String(), c.now)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.EnsureBucket(context.Background()); err != nil {
		t.Fatal(err)
	}
	testStore(t, s, c)

	t.Run("bad URLs", func(t *testing.T) {
		for _, bad := range []string{"ftp://a:b@h/x", "http://h/x", "http://a:b@h/", "http://a:b@h/x/y"} {
			if _, err := NewS3FromURL(bad, nil); err == nil {
				t.Errorf("%s accepted", bad)
			}
		}
	})
}
