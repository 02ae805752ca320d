package service

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/simpleci/simpleci/libs/forge/github"
	"github.com/simpleci/simpleci/libs/forge/netguard"
	"github.com/simpleci/simpleci/libs/platform/node"
	"github.com/simpleci/simpleci/libs/platform/node/nodesql"
	"github.com/simpleci/simpleci/libs/platform/seal"
)

// Component runs the auth service in a node process; the process then verifies user
// tokens with it directly.
type Component struct {
	// AdminTokenFile holds the bootstrap admin token (default DATA/admin-token).
	AdminTokenFile string
	// Service is the running service (set by Init).
	Service *Service
	// NewAdminToken is the admin token when this start created it (set by Init).
	NewAdminToken string
	// GitHub configures sign-in with GitHub (GitHubFlags); an empty client id disables it.
	GitHub GitHubFlags
	// SignIn serves sign-in with GitHub when it is configured (set by Init).
	SignIn *SignIn
	// Repositories lists users' GitHub repositories with their own tokens (set by Init;
	// FailedPrecondition for everyone without sign-in with GitHub).
	Repositories *Repositories
}

// GitHubFlags are the flags of sign-in with GitHub (docs/operations.md). --github-url
// and --github-api-url mean the same as the forge's: GitHub's web and REST API bases.
type GitHubFlags struct {
	ClientID, ClientSecretFile, WebURL, APIURL, PublicURL, Keyring string
}

// Enabled tells whether sign-in with GitHub is configured.
func (f *GitHubFlags) Enabled() bool { return f.ClientID != "" }

// Register adds the flags to fs (`simpleci serve` through Flags, `simpleci dev` directly).
func (f *GitHubFlags) Register(fs *flag.FlagSet) {
	fs.StringVar(&f.ClientID, "github-client-id", node.Getenv("SIMPLECI_GITHUB_CLIENT_ID", ""), "auth: client id of the GitHub OAuth App (or GitHub App) users sign in with (empty: no sign-in with GitHub)")
	fs.StringVar(&f.ClientSecretFile, "github-client-secret-file", node.Getenv("SIMPLECI_GITHUB_CLIENT_SECRET_FILE", ""), "auth: file holding that app's client secret")
	node.SharedString(fs, &f.WebURL, "github-url", node.Getenv("SIMPLECI_GITHUB_URL", "https://github.com"), "GitHub's web base URL (GitHub Enterprise Server: https://HOST)")
	node.SharedString(fs, &f.APIURL, "github-api-url", node.Getenv("SIMPLECI_GITHUB_API_URL", "https://api.github.com/"), "GitHub's REST API base URL (GitHub Enterprise Server: https://HOST/api/v3/)")
	node.SharedString(fs, &f.PublicURL, "public-url", node.Getenv("SIMPLECI_PUBLIC_URL", ""), "external base URL of this service, as browsers reach it (the OAuth callback is PUBLIC-URL/auth/github/callback)")
	fs.StringVar(&f.Keyring, "github-token-keyring", node.Getenv("SIMPLECI_GITHUB_TOKEN_KEYRING", ""), "auth: file of the keys that seal users' GitHub tokens (ID:BASE64 per line; default DATA/github-tokens.keyring, created if missing)")
}

func (f *GitHubFlags) validate(cfg *node.Config) []string {
	if !f.Enabled() {
		return nil
	}
	var problems []string
	if f.ClientSecretFile == "" {
		problems = append(problems, "sign-in with GitHub (--github-client-id) needs --github-client-secret-file")
	}
	if f.PublicURL == "" {
		problems = append(problems, "sign-in with GitHub (--github-client-id) needs --public-url, the base of the callback URL")
	}
	if f.Keyring == "" && cfg.DataDir == "" {
		problems = append(problems, "sign-in with GitHub needs --github-token-keyring or --data")
	}
	return problems
}

// config reads the secret and the keyring.
func (f *GitHubFlags) config(dataDir string) (GitHubConfig, error) {
	b, err := os.ReadFile(f.ClientSecretFile)
	if err != nil {
		return GitHubConfig{}, fmt.Errorf("--github-client-secret-file: %w", err)
	}
	secret := strings.TrimSpace(string(b))
	if secret == "" {
		return GitHubConfig{}, fmt.Errorf("--github-client-secret-file %s is empty", f.ClientSecretFile)
	}
	keyring := f.Keyring
	if keyring == "" {
		keyring = filepath.Join(dataDir, "github-tokens.keyring")
	}
	keys, err := seal.LoadOrCreate(keyring)
	if err != nil {
		return GitHubConfig{}, fmt.Errorf("github token keyring %s: %w", keyring, err)
	}
	return GitHubConfig{ClientID: f.ClientID, ClientSecret: secret, WebURL: f.WebURL, APIURL: f.APIURL, PublicURL: f.PublicURL, Keys: keys}, nil
}

// Name implements node.Component.
func (c *Component) Name() string { return "auth" }

// Flags implements node.Flagger.
func (c *Component) Flags(fs *flag.FlagSet) {
	fs.StringVar(&c.AdminTokenFile, "admin-token-file", node.Getenv("SIMPLECI_ADMIN_TOKEN_FILE", ""), "auth: file with the bootstrap admin token (created if missing)")
	c.GitHub.Register(fs)
}

// Validate implements node.Validator.
func (c *Component) Validate(cfg *node.Config) []string {
	problems := cfg.RequireDatabase("auth")
	if c.AdminTokenFile == "" && cfg.DataDir == "" {
		problems = append(problems, "the auth service needs --admin-token-file or --data")
	}
	return append(problems, c.GitHub.validate(cfg)...)
}

// Init implements node.Component.
func (c *Component) Init(ctx context.Context, env *node.Env) error {
	db, err := nodesql.Open(ctx, env, "auth")
	if err != nil {
		return err
	}
	if c.Service, err = New(ctx, db); err != nil {
		return err
	}
	tokenFile := c.AdminTokenFile
	if tokenFile == "" {
		if env.Config.DataDir == "" {
			return errors.New("no admin token file (--admin-token-file or --data)")
		}
		tokenFile = filepath.Join(env.Config.DataDir, "admin-token")
	}
	tok, created, err := c.Service.Bootstrap(ctx, tokenFile)
	if err != nil {
		return err
	}
	if created {
		c.NewAdminToken = tok
	}
	// A token revoked here stops working in this process at once; other processes
	// verify again within auth.CacheTTL.
	c.Service.OnRevoke = env.ForgetToken
	env.Authenticate(Local{S: c.Service})
	c.Service.Register(env.GRPC)
	c.Repositories = &Repositories{}
	c.Repositories.Register(env.GRPC)
	if c.GitHub.Enabled() {
		cfg, err := c.GitHub.config(env.Config.DataDir)
		if err != nil {
			return err
		}
		cfg.Log = env.Log
		if c.SignIn, err = NewSignIn(c.Service, cfg); err != nil {
			return err
		}
		c.SignIn.Register(env.Mux)
		// Users' GitHub calls follow the forge's network rules (--allow-repo-network).
		networks, err := netguard.ParseNetworks(env.Config.AllowRepoNetworks)
		if err != nil {
			return fmt.Errorf("--allow-repo-network: %w", err)
		}
		client, err := github.NewUserClient(github.Options{APIURL: c.GitHub.APIURL, AllowNetworks: networks})
		if err != nil {
			return fmt.Errorf("--github-api-url: %w", err)
		}
		c.Repositories.SetSignIn(c.SignIn, client)
	}
	return nil
}
