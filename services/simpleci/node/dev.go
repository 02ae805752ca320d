package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/simpleci/simpleci/libs/platform/auth"
	apiv1 "github.com/simpleci/simpleci/proto/simpleci/api/v1"
	authv1 "github.com/simpleci/simpleci/proto/simpleci/auth/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func randomHex() string {
	b := make([]byte, 24)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Demo creates, once, a project "demo" bound to a local git repository made from the
// files in src, and writes its webhook secret to DIR/demo-webhook-secret.
func Demo(ctx context.Context, n *Node, src string) error {
	if n.Auth == nil || n.Projects == nil {
		return nil
	}
	if st, err := os.Stat(src); err != nil || !st.IsDir() {
		n.Cfg.Log.Warn("no demo project: demo files not found", "dir", src)
		return nil
	}
	token, err := os.ReadFile(filepath.Join(n.Cfg.DataDir, "admin-token"))
	if err != nil {
		return err
	}
	p, err := n.Auth.VerifyToken(ctx, &authv1.VerifyTokenRequest{Token: strings.TrimSpace(string(token))})
	if err != nil {
		return err
	}
	actx := auth.WithPrincipal(ctx, p)
	if _, err := n.Projects.GetProject(actx, &apiv1.GetProjectRequest{Project: "demo"}); status.Code(err) != codes.NotFound {
		return err
	}
	repo := filepath.Join(n.Cfg.DataDir, "demo-repo")
	if err := os.RemoveAll(repo); err != nil {
		return err
	}
	if err := copyTree(src, repo); err != nil {
		return fmt.Errorf("demo repository: %w", err)
	}
	for _, args := range [][]string{{"init", "-q", "-b", "main"}, {"add", "-A"},
		{"-c", "user.name=SimpleCI", "-c", "user.email=demo@simpleci.invalid", "commit", "-q", "-m", "SimpleCI demo"}} {
		cmd := exec.CommandContext(ctx, "git", args...)
		cmd.Dir = repo
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("demo repository: git %s: %v: %s", args[0], err, out)
		}
	}
	proj, err := n.Projects.CreateProject(actx, &apiv1.CreateProjectRequest{Name: "demo", Provider: "local", Repository: repo,
		Events: []string{"push", "manual"}, Tier: "standard"})
	if err != nil {
		return fmt.Errorf("demo project: %w", err)
	}
	if err := os.WriteFile(filepath.Join(n.Cfg.DataDir, "demo-webhook-secret"), []byte(proj.WebhookSecret+"\n"), 0o600); err != nil {
		return err
	}
	n.Cfg.Log.Info("demo project created", "repository", repo)
	return nil
}

func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		info, _ := d.Info()
		return os.WriteFile(target, b, info.Mode().Perm())
	})
}
