package service_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/simpleci/simpleci/libs/forge"
	"github.com/simpleci/simpleci/libs/forge/local"
	apiv1 "github.com/simpleci/simpleci/proto/simpleci/api/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func initRepo(t *testing.T, dir string) {
	t.Helper()
	if out, err := exec.Command("git", "init", "-q", dir).CombinedOutput(); err != nil {
		t.Fatalf("git init: %v %s", err, out)
	}
}

// A project may be bound only to a repository path under the operator's roots (symbolic
// links resolved, ".." refused), never to one another organisation's project is bound
// to, and never to a URL of an internal address or with credentials in it.
func TestCreateProjectRepository(t *testing.T) {
	s := newService(t)
	base := t.TempDir()
	root, outside := filepath.Join(base, "repos"), filepath.Join(base, "outside")
	for _, d := range []string{"app", "theirs", "mine"} {
		initRepo(t, filepath.Join(root, d))
	}
	initRepo(t, filepath.Join(outside, "other"))
	if err := os.Symlink(filepath.Join(outside, "other"), filepath.Join(root, "escape")); err != nil {
		t.Fatal(err)
	}
	// A repository of its own whose .git is a symbolic link to org1's (inside the root).
	os.MkdirAll(filepath.Join(root, "sneaky"), 0o755)
	if err := os.Symlink(filepath.Join(root, "app", ".git"), filepath.Join(root, "sneaky", ".git")); err != nil {
		t.Fatal(err)
	}
	lf, err := local.New(local.Options{LocalRoots: []string{root}, Protocols: []string{"file", "https", "http", "ssh"}})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := forge.NewRegistry(lf)
	if err != nil {
		t.Fatal(err)
	}
	s.WithForges(reg)
	org1, org2 := user(t, "org1", "alice"), user(t, "org2", "mallory")

	p, err := s.CreateProject(org1, &apiv1.CreateProjectRequest{Name: "app", Provider: "local", Repository: filepath.Join(root, "app")})
	if err != nil {
		t.Fatalf("a repository under the root: %v", err)
	}
	if want, _ := filepath.EvalSymlinks(filepath.Join(root, "app")); p.Repository != want {
		t.Errorf("stored %q, want the canonical path %q", p.Repository, want)
	}
	if _, err := s.CreateProject(org1, &apiv1.CreateProjectRequest{Name: "app-again", Provider: "local", Repository: filepath.Join(root, "app")}); err != nil {
		t.Errorf("the same organisation binds its repository twice: %v", err)
	}

	for _, tt := range []struct {
		name, repo string
		code       codes.Code
		says       string
	}{
		{"etc", "/etc", codes.PermissionDenied, "not under a repository directory"},
		{"outside", filepath.Join(outside, "other"), codes.PermissionDenied, "not under a repository directory"},
		{"symlink", filepath.Join(root, "escape"), codes.PermissionDenied, "symbolic link"},
		{"dotdot", root + "/app/../../outside/other", codes.InvalidArgument, `".."`},
		{"missing", filepath.Join(root, "nope"), codes.NotFound, "does not exist"},
		{"others", filepath.Join(root, "app"), codes.PermissionDenied, "another organisation"},
		{"others-git-dir", filepath.Join(root, "app", ".git"), codes.PermissionDenied, "another organisation"},
		{"git-dir-linked-to-others", filepath.Join(root, "sneaky"), codes.PermissionDenied, "another organisation"},
		{"loopback", "https://127.0.0.1:9/x", codes.PermissionDenied, "loopback"},
		{"metadata", "http://169.254.169.254/latest", codes.PermissionDenied, "link-local"},
		{"localhost", "https://localhost/x", codes.PermissionDenied, "loopback"},
		{"credentials", "https://user:secret@example.com/x", codes.InvalidArgument, "may not hold credentials"},
		{"token", "https://ghp_s3cret@example.com/x", codes.InvalidArgument, "may not hold credentials"},
		{"scp-like", "user:s3cret@example.com:x.git", codes.InvalidArgument, "may not hold credentials"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.CreateProject(org2, &apiv1.CreateProjectRequest{Name: "p-" + tt.name, Provider: "local", Repository: tt.repo})
			st := status.Convert(err)
			if st.Code() != tt.code || !strings.Contains(st.Message(), tt.says) {
				t.Fatalf("%s: %v; want %s saying %q", tt.repo, err, tt.code, tt.says)
			}
			for _, leak := range []string{"secret", "s3cret", "app\"", "project \"app"} {
				if strings.Contains(st.Message(), leak) {
					t.Errorf("message %q holds %q", st.Message(), leak)
				}
			}
			if len(st.Message()) > forge.MaxReasonLength {
				t.Errorf("message of %d bytes", len(st.Message()))
			}
		})
	}
	if _, err := s.CreateProject(org2, &apiv1.CreateProjectRequest{Name: "mine", Provider: "local", Repository: filepath.Join(root, "mine")}); err != nil {
		t.Errorf("another organisation's own repository: %v", err)
	}
}
