// Package service is the project service: projects bound to a repository, the events
// that trigger them, their runner tier and their webhook secret.
package service

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/simpleci/simpleci/libs/forge"
	"github.com/simpleci/simpleci/libs/platform/auth"
	"github.com/simpleci/simpleci/libs/platform/id"
	"github.com/simpleci/simpleci/libs/platform/seal"
	"github.com/simpleci/simpleci/libs/platform/sqldb"
	apiv1 "github.com/simpleci/simpleci/proto/simpleci/api/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Service implements the public ProjectService and the peers' ProjectInternalService.
type Service struct {
	apiv1.UnimplementedProjectServiceServer
	apiv1.UnimplementedProjectInternalServiceServer
	db        *sqldb.DB
	providers []string
	keys      *seal.Keyring // nil: secrets disabled
	// forges vet a repository before a project is bound to it (repository.go); nil
	// checks only its form.
	forges *forge.Registry
	// tierSource lists the served tiers (tiers.go).
	tierSource TierSource
	// publicURL is where forges deliver webhooks (hooks.go); "" registers none.
	publicURL string
}

// New returns the service over db, creating its tables. providers lists the forge names
// projects may use.
func New(ctx context.Context, db *sqldb.DB, providers []string) (*Service, error) {
	if db == nil {
		return nil, errors.New("project: nil database")
	}
	if _, err := db.ApplyMigrations(ctx, Schema); err != nil {
		return nil, fmt.Errorf("project: %w", err)
	}
	return &Service{db: db, providers: providers}, nil
}

// Register adds both services to a gRPC server.
func (s *Service) Register(g *grpc.Server) {
	apiv1.RegisterProjectServiceServer(g, s)
	apiv1.RegisterProjectInternalServiceServer(g, s)
}

var (
	nameRE     = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
	events     = []string{"push", "pull_request", "tag", "manual", "schedule"}
	networks   = []string{"default", "on", "off"}
	defaultEvs = []string{"push", "manual"}
)

// CreateProject validates and stores a project; the response carries the webhook secret.
func (s *Service) CreateProject(ctx context.Context, req *apiv1.CreateProjectRequest) (*apiv1.Project, error) {
	org, err := auth.RequireOrg(ctx)
	if err != nil {
		return nil, err
	}
	var problems []string
	if !nameRE.MatchString(req.GetName()) {
		problems = append(problems, fmt.Sprintf("name %q: use 1-63 lower-case letters, digits and '-', starting with a letter or digit", req.GetName()))
	}
	if !slices.Contains(s.providers, req.GetProvider()) {
		problems = append(problems, fmt.Sprintf("provider %q: supported providers are %s", req.GetProvider(), strings.Join(s.providers, ", ")))
	}
	repo := strings.TrimSpace(req.GetRepository())
	if repo == "" || len(repo) > 1024 {
		problems = append(problems, "repository: required (owner/name, or a path or git URL for local), at most 1024 characters")
	}
	evs := req.GetEvents()
	if len(evs) == 0 {
		evs = defaultEvs
	}
	for _, e := range evs {
		if !slices.Contains(events, e) {
			problems = append(problems, fmt.Sprintf("events: %q is not one of %s", e, strings.Join(events, ", ")))
		}
	}
	tier, problem, err := s.checkTier(ctx, req.GetTier())
	if err != nil {
		return nil, err
	}
	if problem != "" {
		problems = append(problems, problem)
	}
	network := req.GetNetwork()
	if network == "" {
		network = "default"
	}
	if !slices.Contains(networks, network) {
		problems = append(problems, fmt.Sprintf("network %q: use default or on (the network, except for pull requests the forge does not vouch for) or off", network))
	}
	if len(problems) > 0 {
		return nil, status.Error(codes.InvalidArgument, strings.Join(problems, "; "))
	}
	if repo, err = s.checkRepository(ctx, org, req.GetProvider(), repo); err != nil {
		return nil, err
	}
	p := &apiv1.Project{
		Id: id.New(), OrgId: org, Name: req.GetName(), Provider: req.GetProvider(), Repository: repo,
		Events: slices.Compact(slices.Sorted(slices.Values(evs))), Tier: tier, CreatedAt: timestamppb.Now(), Network: network,
	}
	secret := id.Secret(32)
	withPath(p)
	var taken int
	if err := s.db.QueryRowContext(ctx, s.db.Q(`SELECT COUNT(*) FROM projects WHERE org_id = ? AND name = ?`), org, p.Name).Scan(&taken); err != nil {
		return nil, status.Errorf(codes.Internal, "create project: %v", err)
	}
	if taken > 0 { // checked before a hook is registered; the unique key still decides a race
		return nil, status.Errorf(codes.AlreadyExists, "a project named %q already exists", p.Name)
	}
	// The hook first: when the forge refuses it, nothing is stored (hooks.go).
	hookID, err := s.createHook(ctx, p, secret)
	if err != nil {
		return nil, err
	}
	_, err = s.db.ExecContext(ctx, s.db.Q(`INSERT INTO projects (id, org_id, name, provider, repository, events, tier, webhook_secret, created_at, network, webhook_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		p.Id, p.OrgId, p.Name, p.Provider, p.Repository, strings.Join(p.Events, ","), p.Tier, secret, p.CreatedAt.AsTime().UnixNano(), p.Network, hookID)
	if err != nil {
		// Best effort: a hook of a project that does not exist only earns 404s.
		_ = s.deleteHook(context.WithoutCancel(ctx), p, hookID)
	}
	if sqldb.IsUniqueViolation(err) {
		return nil, status.Errorf(codes.AlreadyExists, "a project named %q already exists", p.Name)
	}
	if err != nil {
		return nil, status.Errorf(codes.Internal, "create project: %v", err)
	}
	withWebhook(p, hookID)
	p.WebhookSecret = secret
	return p, nil
}

func withPath(p *apiv1.Project) {
	p.WebhookPath = "/api/v1/webhooks/" + p.Provider + "/" + p.Id
}

const cols = `id, org_id, name, provider, repository, events, tier, webhook_secret, created_at, network, webhook_id`

func scan(row interface{ Scan(...any) error }) (*apiv1.Project, string, error) {
	var p apiv1.Project
	var evs, secret string
	var created, hookID int64
	if err := row.Scan(&p.Id, &p.OrgId, &p.Name, &p.Provider, &p.Repository, &evs, &p.Tier, &secret, &created, &p.Network, &hookID); err != nil {
		return nil, "", err
	}
	if evs != "" {
		p.Events = strings.Split(evs, ",")
	}
	p.CreatedAt = timestamppb.New(time.Unix(0, created))
	withPath(&p)
	withWebhook(&p, hookID)
	return &p, secret, nil
}

// find looks a project up by id, then by name; org "" searches every organisation (for
// webhooks, which arrive unauthenticated) and refuses a name that is not unique. An id
// always wins over a name, so no project can be shadowed by another one named like it.
func (s *Service) find(ctx context.Context, org, ref string) (*apiv1.Project, string, error) {
	byID, byName := `SELECT `+cols+` FROM projects WHERE id = ?`, `SELECT `+cols+` FROM projects WHERE name = ?`
	args := []any{ref}
	if org != "" {
		byID += ` AND org_id = ?`
		byName += ` AND org_id = ?`
		args = append(args, org)
	}
	p, secret, err := scan(s.db.QueryRowContext(ctx, s.db.Q(byID), args...))
	if errors.Is(err, sql.ErrNoRows) {
		if org == "" {
			var n int
			if err := s.db.QueryRowContext(ctx, s.db.Q(`SELECT COUNT(*) FROM projects WHERE name = ?`), ref).Scan(&n); err != nil {
				return nil, "", status.Errorf(codes.Internal, "get project: %v", err)
			}
			if n > 1 {
				return nil, "", status.Errorf(codes.FailedPrecondition, "project name %q is used by several organisations: use the project id", ref)
			}
		}
		p, secret, err = scan(s.db.QueryRowContext(ctx, s.db.Q(byName), args...))
	}
	if errors.Is(err, sql.ErrNoRows) {
		return nil, "", status.Errorf(codes.NotFound, "project %q not found", ref)
	}
	if err != nil {
		return nil, "", status.Errorf(codes.Internal, "get project: %v", err)
	}
	return p, secret, nil
}

// GetProject returns a project of the caller's organisation.
func (s *Service) GetProject(ctx context.Context, req *apiv1.GetProjectRequest) (*apiv1.Project, error) {
	_, p, err := s.own(ctx, req.GetProject())
	if p != nil {
		s.hookLiveness(ctx, p)
		p.Repository = forge.Redact(p.Repository) // a project made before credentials were refused
	}
	return p, err
}

// ListProjects lists the caller's organisation's projects by name.
func (s *Service) ListProjects(ctx context.Context, req *apiv1.ListProjectsRequest) (*apiv1.ListProjectsResponse, error) {
	org, err := auth.RequireOrg(ctx)
	if err != nil {
		return nil, err
	}
	size := int(req.GetPageSize())
	if size <= 0 || size > 200 {
		size = 50
	}
	offset := 0
	if t := req.GetPageToken(); t != "" {
		n, err := strconv.Atoi(t)
		if err != nil || n < 0 {
			return nil, status.Error(codes.InvalidArgument, "page_token: not a token this server issued")
		}
		offset = n
	}
	rows, err := s.db.QueryContext(ctx, s.db.Q(`SELECT `+cols+` FROM projects WHERE org_id = ? ORDER BY name LIMIT ? OFFSET ?`), org, size+1, offset)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "list projects: %v", err)
	}
	defer rows.Close()
	resp := &apiv1.ListProjectsResponse{}
	for rows.Next() {
		p, _, err := scan(rows)
		if err != nil {
			return nil, status.Errorf(codes.Internal, "list projects: %v", err)
		}
		p.Repository = forge.Redact(p.Repository)
		resp.Projects = append(resp.Projects, p)
	}
	if len(resp.Projects) > size {
		resp.Projects = resp.Projects[:size]
		resp.NextPageToken = strconv.Itoa(offset + size)
	}
	return resp, rows.Err()
}

// ResolveProject returns a project and its webhook secret to a peer service.
func (s *Service) ResolveProject(ctx context.Context, req *apiv1.ResolveProjectRequest) (*apiv1.ResolvedProject, error) {
	if !auth.IsInternal(ctx) {
		return nil, status.Error(codes.PermissionDenied, "only SimpleCI services may resolve projects")
	}
	p, secret, err := s.find(ctx, req.GetOrgId(), req.GetProject())
	if err != nil {
		return nil, err
	}
	return &apiv1.ResolvedProject{Project: p, WebhookSecret: secret}, nil
}

// own finds a project of the caller's organisation (another's is NotFound).
func (s *Service) own(ctx context.Context, ref string) (string, *apiv1.Project, error) {
	org, err := auth.RequireOrg(ctx)
	if err != nil {
		return "", nil, err
	}
	p, _, err := s.find(ctx, org, ref)
	return org, p, err
}

// UpdateProject changes the settings sent (events, tier, network) of a project of the
// caller's organisation, validated as CreateProject validates them. New events are
// given to the project's webhook first (hooks.go): when the forge refuses, nothing changes.
func (s *Service) UpdateProject(ctx context.Context, req *apiv1.UpdateProjectRequest) (*apiv1.Project, error) {
	org, err := auth.RequireOrg(ctx)
	if err != nil {
		return nil, err
	}
	p, secret, err := s.find(ctx, org, req.GetProject())
	if err != nil {
		return nil, err
	}
	var problems []string
	if evs := req.GetEvents(); len(evs) > 0 {
		for _, e := range evs {
			if !slices.Contains(events, e) {
				problems = append(problems, fmt.Sprintf("events: %q is not one of %s", e, strings.Join(events, ", ")))
			}
		}
		p.Events = slices.Compact(slices.Sorted(slices.Values(evs)))
	}
	if req.GetTier() != "" {
		tier, problem, err := s.checkTier(ctx, req.GetTier())
		if err != nil {
			return nil, err
		}
		if problem != "" {
			problems = append(problems, problem)
		}
		p.Tier = tier
	}
	if n := req.GetNetwork(); n != "" {
		if !slices.Contains(networks, n) {
			problems = append(problems, fmt.Sprintf("network %q: use default or on (the network, except for pull requests the forge does not vouch for) or off", n))
		}
		p.Network = n
	}
	if len(problems) > 0 {
		return nil, status.Error(codes.InvalidArgument, strings.Join(problems, "; "))
	}
	hookID := p.GetWebhook().GetId()
	if len(req.GetEvents()) > 0 {
		if hookID, err = s.updateHook(ctx, p, secret, hookID); err != nil {
			return nil, err
		}
	}
	_, err = s.db.ExecContext(ctx, s.db.Q(`UPDATE projects SET events = ?, tier = ?, network = ?, webhook_id = ? WHERE id = ? AND org_id = ?`),
		strings.Join(p.Events, ","), p.Tier, p.Network, hookID, p.Id, org)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "update project: %v", err)
	}
	withWebhook(p, hookID)
	p.Repository = forge.Redact(p.Repository)
	return p, nil
}

// DeleteProject deletes a project of the caller's organisation and its secrets. Its
// runs stay in the scheduler's event store (docs/adr/0019-roles.md).
func (s *Service) DeleteProject(ctx context.Context, req *apiv1.DeleteProjectRequest) (*emptypb.Empty, error) {
	org, p, err := s.own(ctx, req.GetProject())
	if err != nil {
		return nil, err
	}
	// The hook first: when the forge fails, the project stays and the call can be
	// repeated; a hook already gone is fine (hooks.go).
	if err := s.deleteHook(ctx, p, p.GetWebhook().GetId()); err != nil {
		return nil, err
	}
	err = s.db.Tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, s.db.Q(`DELETE FROM project_secrets WHERE project_id = ?`), p.Id); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, s.db.Q(`DELETE FROM projects WHERE id = ? AND org_id = ?`), p.Id, org)
		return err
	})
	if err != nil {
		return nil, status.Errorf(codes.Internal, "delete project: %v", err)
	}
	return &emptypb.Empty{}, nil
}
