package node

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/simpleci/simpleci/libs/platform/auth"
	apiv1 "github.com/simpleci/simpleci/proto/simpleci/api/v1"
	authv1 "github.com/simpleci/simpleci/proto/simpleci/auth/v1"
	authsvc "github.com/simpleci/simpleci/services/auth/service"
	projectsvc "github.com/simpleci/simpleci/services/project/service"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Demo creates, once, a project "demo" bound to a local git repository made from the
// files in src, and writes its webhook secret to DIR/demo-webhook-secret.
func Demo(ctx context.Context, auths *authsvc.Service, projects *projectsvc.Service, dataDir, src string, log *slog.Logger) error {
	if auths == nil || projects == nil {
		return nil
	}
	if st, err := os.Stat(src); err != nil || !st.IsDir() {
		log.Warn("no demo project: demo files not found", "dir", src)
		return nil
	}
	token, err := os.ReadFile(filepath.Join(dataDir, "admin-token"))
	if err != nil {
		return err
	}
	p, err := auths.VerifyToken(ctx, &authv1.VerifyTokenRequest{Token: strings.TrimSpace(string(token))})
	if err != nil {
		return err
	}
	actx := auth.WithPrincipal(ctx, p)
	if _, err := projects.GetProject(actx, &apiv1.GetProjectRequest{Project: "demo"}); status.Code(err) != codes.NotFound {
		return err
	}
	repo := filepath.Join(dataDir, "demo-repo")
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
	proj, err := projects.CreateProject(actx, &apiv1.CreateProjectRequest{Name: "demo", Provider: "local", Repository: repo,
		Events: []string{"push", "manual"}, Tier: "standard"})
	if err != nil {
		return fmt.Errorf("demo project: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dataDir, "demo-webhook-secret"), []byte(proj.WebhookSecret+"\n"), 0o600); err != nil {
		return err
	}
	log.Info("demo project created", "repository", repo)
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
