package service

import (
	"context"
	"fmt"
	"regexp"
	"time"
	"unicode/utf8"

	"github.com/simpleci/simpleci/libs/platform/auth"
	"github.com/simpleci/simpleci/libs/platform/seal"
	apiv1 "github.com/simpleci/simpleci/proto/simpleci/api/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// MinSecretLength is the shortest secret value accepted, in characters: a shorter one
// could not be masked in logs without masking ordinary text everywhere (the engine's rule
// too, in characters: a value of 3 two-byte characters would be stored but never masked).
const MinSecretLength = 4

// MaxSecretLength bounds a secret value, in characters (as the API document states it).
const MaxSecretLength = 64 << 10

var secretNameRE = regexp.MustCompile(`^[A-Z_][A-Z0-9_]{0,127}$`)

// WithKeys enables secrets, sealed with keys; without it the secret calls answer
// FailedPrecondition.
func (s *Service) WithKeys(ctx context.Context, keys *seal.Keyring) error {
	s.keys = keys
	return nil // project_secrets is in Schema, made by New
}

func (s *Service) secretsProject(ctx context.Context, ref string) (*apiv1.Project, error) {
	if s.keys == nil {
		return nil, status.Error(codes.FailedPrecondition, "secrets are not configured on this server (no keyring: --secrets-keyring)")
	}
	_, p, err := s.own(ctx, ref)
	return p, err
}

func context2(projectID, name string) []byte { return []byte(projectID + "/" + name) }

// SetSecret seals and stores a secret; the value is never returned by any call.
func (s *Service) SetSecret(ctx context.Context, req *apiv1.SetSecretRequest) (*apiv1.Secret, error) {
	p, err := s.secretsProject(ctx, req.GetProject())
	if err != nil {
		return nil, err
	}
	switch n := utf8.RuneCountInString(req.GetValue()); {
	case !secretNameRE.MatchString(req.GetName()):
		return nil, status.Errorf(codes.InvalidArgument, "secret name %q: use upper-case letters, digits and '_', not starting with a digit (it becomes an environment variable)", req.GetName())
	case n < MinSecretLength:
		return nil, status.Errorf(codes.InvalidArgument, "secret %s: a value shorter than %d characters cannot be masked in logs without hiding ordinary text, so it is refused", req.GetName(), MinSecretLength)
	case n > MaxSecretLength:
		return nil, status.Errorf(codes.InvalidArgument, "secret %s: longer than %d characters", req.GetName(), MaxSecretLength)
	}
	keyID, sealed, err := s.keys.Seal([]byte(req.GetValue()), context2(p.Id, req.GetName()))
	if err != nil {
		return nil, status.Errorf(codes.Internal, "seal secret: %v", err)
	}
	now := time.Now()
	_, err = s.db.ExecContext(ctx, s.db.Q(`INSERT INTO project_secrets (project_id, name, key_id, sealed, updated_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (project_id, name) DO UPDATE SET key_id = excluded.key_id, sealed = excluded.sealed, updated_at = excluded.updated_at`),
		p.Id, req.GetName(), keyID, sealed, now.UnixNano())
	if err != nil {
		return nil, status.Errorf(codes.Internal, "store secret %s: %v", req.GetName(), err)
	}
	return &apiv1.Secret{Name: req.GetName(), UpdatedAt: timestamppb.New(now)}, nil
}

// ListSecrets lists names and update times.
func (s *Service) ListSecrets(ctx context.Context, req *apiv1.ListSecretsRequest) (*apiv1.ListSecretsResponse, error) {
	p, err := s.secretsProject(ctx, req.GetProject())
	if err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, s.db.Q(`SELECT name, updated_at FROM project_secrets WHERE project_id = ? ORDER BY name`), p.Id)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "list secrets: %v", err)
	}
	defer rows.Close()
	out := &apiv1.ListSecretsResponse{}
	for rows.Next() {
		var name string
		var at int64
		if err := rows.Scan(&name, &at); err != nil {
			return nil, status.Errorf(codes.Internal, "list secrets: %v", err)
		}
		out.Secrets = append(out.Secrets, &apiv1.Secret{Name: name, UpdatedAt: timestamppb.New(time.Unix(0, at))})
	}
	return out, rows.Err()
}

// DeleteSecret removes a secret.
func (s *Service) DeleteSecret(ctx context.Context, req *apiv1.DeleteSecretRequest) (*emptypb.Empty, error) {
	p, err := s.secretsProject(ctx, req.GetProject())
	if err != nil {
		return nil, err
	}
	res, err := s.db.ExecContext(ctx, s.db.Q(`DELETE FROM project_secrets WHERE project_id = ? AND name = ?`), p.Id, req.GetName())
	if err != nil {
		return nil, status.Errorf(codes.Internal, "delete secret: %v", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil, status.Errorf(codes.NotFound, "project %s has no secret %q", p.Name, req.GetName())
	}
	return &emptypb.Empty{}, nil
}

// JobSecrets opens a project's secrets for the scheduler, which hands them to the runner
// of a job it just leased (the scheduler's identity only; the ACL says the same).
func (s *Service) JobSecrets(ctx context.Context, req *apiv1.JobSecretsRequest) (*apiv1.JobSecretsResponse, error) {
	if !auth.IsService(ctx, auth.Scheduler) {
		return nil, status.Error(codes.PermissionDenied, "only the scheduler may read a project's secrets")
	}
	out := &apiv1.JobSecretsResponse{Secrets: map[string]string{}}
	if s.keys == nil {
		return out, nil
	}
	rows, err := s.db.QueryContext(ctx, s.db.Q(`SELECT name, key_id, sealed FROM project_secrets WHERE project_id = ?`), req.GetProjectId())
	if err != nil {
		return nil, status.Errorf(codes.Internal, "read secrets: %v", err)
	}
	defer rows.Close()
	for rows.Next() {
		var name, keyID string
		var sealed []byte
		if err := rows.Scan(&name, &keyID, &sealed); err != nil {
			return nil, status.Errorf(codes.Internal, "read secrets: %v", err)
		}
		v, err := s.keys.Open(keyID, sealed, context2(req.GetProjectId(), name))
		if err != nil {
			return nil, status.Errorf(codes.Internal, "secret %s: %v", name, err)
		}
		out.Secrets[name] = string(v)
	}
	if err := rows.Err(); err != nil {
		return nil, status.Errorf(codes.Internal, "read secrets: %v", fmt.Sprint(err))
	}
	return out, nil
}
