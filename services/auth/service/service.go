// Package service is the auth service: users, organisations and API tokens (stored as
// SHA-256 hashes, never in plain text), and the VerifyToken call every other service
// uses to authenticate callers.
package service

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/simpleci/simpleci/libs/platform/id"
	"github.com/simpleci/simpleci/libs/platform/sqldb"
	apiv1 "github.com/simpleci/simpleci/proto/simpleci/api/v1"
	authv1 "github.com/simpleci/simpleci/proto/simpleci/auth/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Service implements authv1.AuthService.
type Service struct {
	authv1.UnimplementedAuthServiceServer
	apiv1.UnimplementedTokenServiceServer
	apiv1.UnimplementedRunnerTokenServiceServer
	apiv1.UnimplementedMemberServiceServer
	apiv1.UnimplementedTeamServiceServer
	apiv1.UnimplementedOrganizationServiceServer
	db *sqldb.DB
	// Now is the service's clock (tests replace it); expiry is judged by it.
	Now func() time.Time
	// OnRevoke, when set, is told the id of each token revoked (RevokeToken, RemoveMember)
	// or whose user's role changed (UpdateMember), so that the process can drop it from
	// its verification cache at once (component.go).
	OnRevoke func(tokenID string)
}

// New returns the service over db, creating its tables.
func New(ctx context.Context, db *sqldb.DB) (*Service, error) {
	if db == nil {
		return nil, errors.New("auth: nil database")
	}
	if _, err := db.ApplyMigrations(ctx, Schema); err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	return &Service{db: db, Now: time.Now}, nil
}

// Register adds the service to a gRPC server.
func (s *Service) Register(g *grpc.Server) {
	authv1.RegisterAuthServiceServer(g, s)
	apiv1.RegisterTokenServiceServer(g, s)
	apiv1.RegisterRunnerTokenServiceServer(g, s)
	apiv1.RegisterMemberServiceServer(g, s)
	apiv1.RegisterTeamServiceServer(g, s)
	apiv1.RegisterOrganizationServiceServer(g, s)
}

// TokenPrefix starts every API token, so that secret scanners can recognise them.
const TokenPrefix = "sci_"

func hash(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// bootstrapName names the admin token that Bootstrap manages.
const bootstrapName = "admin-bootstrap"

// Bootstrap makes sure an admin user exists and that the token in tokenFile is valid for
// it. When tokenFile does not exist, a new token is generated and written there (0600).
// Every other bootstrap token of the admin is revoked: replacing (or removing) the file
// rotates the admin token. A file holding a token that was revoked is refused, so an old
// file restored from a backup does not bring its token back.
// It returns the token and whether it was created now.
func (s *Service) Bootstrap(ctx context.Context, tokenFile string) (token string, created bool, err error) {
	b, err := os.ReadFile(tokenFile)
	switch {
	case err == nil:
		token = strings.TrimSpace(string(b))
		if !strings.HasPrefix(token, TokenPrefix) || len(token) < len(TokenPrefix)+32 {
			return "", false, fmt.Errorf("admin token file %s: not a SimpleCI token (want %q and at least 32 more characters)", tokenFile, TokenPrefix)
		}
	case errors.Is(err, os.ErrNotExist):
		token, created = TokenPrefix+id.Secret(24), true
		if err := os.MkdirAll(filepath.Dir(tokenFile), 0o700); err != nil {
			return "", false, err
		}
		if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
			return "", false, fmt.Errorf("write admin token: %w", err)
		}
	default:
		return "", false, fmt.Errorf("read admin token: %w", err)
	}
	now := s.Now().UnixNano()
	err = s.db.Tx(ctx, func(tx *sql.Tx) error {
		var orgID string
		err := tx.QueryRowContext(ctx, s.db.Q(`SELECT id FROM auth_orgs WHERE name = ?`), "default").Scan(&orgID)
		if errors.Is(err, sql.ErrNoRows) {
			orgID = id.New()
			_, err = tx.ExecContext(ctx, s.db.Q(`INSERT INTO auth_orgs (id, name, created_at) VALUES (?, ?, ?)`), orgID, "default", now)
		}
		if err != nil {
			return err
		}
		var userID string
		err = tx.QueryRowContext(ctx, s.db.Q(`SELECT id FROM auth_users WHERE login = ?`), "admin").Scan(&userID)
		if errors.Is(err, sql.ErrNoRows) {
			userID = id.New()
			_, err = tx.ExecContext(ctx, s.db.Q(`INSERT INTO auth_users (id, org_id, login, admin, created_at) VALUES (?, ?, ?, ?, ?)`), userID, orgID, "admin", true, now)
		}
		if err != nil {
			return err
		}
		// The admin owns its organisation, whatever role it was given since.
		if err := setRole(ctx, s.db, tx, userID, orgID, "owner", now); err != nil {
			return err
		}
		h := hash(token)
		if _, err := tx.ExecContext(ctx, s.db.Q(`INSERT INTO auth_tokens (hash, id, user_id, org_id, name, created_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (hash) DO NOTHING`), h, id.New(), userID, orgID, bootstrapName, now); err != nil {
			return err
		}
		var revoked sql.NullInt64
		if err := tx.QueryRowContext(ctx, s.db.Q(`SELECT revoked_at FROM auth_tokens WHERE hash = ?`), h).Scan(&revoked); err != nil {
			return err
		}
		if revoked.Valid {
			return fmt.Errorf("the token in %s was revoked: remove the file to have a new one created, or write a new token into it", tokenFile)
		}
		// Rotation: the admin's other bootstrap tokens stop working now.
		_, err = tx.ExecContext(ctx, s.db.Q(`UPDATE auth_tokens SET revoked_at = ? WHERE user_id = ? AND name = ? AND hash <> ? AND revoked_at IS NULL`), now, userID, bootstrapName, h)
		return err
	})
	if err != nil {
		return "", false, fmt.Errorf("bootstrap admin: %w", err)
	}
	return token, created, nil
}

// lastUsedGranularity is how stale last_used_at may get before VerifyToken writes it:
// at most one write per token and minute, not one per call.
const lastUsedGranularity = time.Minute

// VerifyToken resolves a token to its user, the organisation the token is bound to and
// the user's effective role there (its own membership's or its teams', the highest), or
// a runner token to its runner. A revoked or expired token is refused (Unauthenticated),
// judged on every call; the principal carries the token's id and expiry so that a cache
// in front of it (libs/platform/auth) honours both.
func (s *Service) VerifyToken(ctx context.Context, req *authv1.VerifyTokenRequest) (*authv1.Principal, error) {
	if isRunnerToken(req.GetToken()) {
		return s.verifyRunner(ctx, req.GetToken())
	}
	if !strings.HasPrefix(req.GetToken(), TokenPrefix) {
		return nil, status.Error(codes.Unauthenticated, "invalid token")
	}
	p := &authv1.Principal{}
	var expires, revoked, lastUsed sql.NullInt64
	h := hash(req.GetToken())
	// A token without an organisation (none is made so) acts in its user's own.
	err := s.db.QueryRowContext(ctx, s.db.Q(`SELECT u.id, COALESCE(t.org_id, u.org_id), u.login, u.admin, t.id, t.expires_at, t.revoked_at, t.last_used_at
		FROM auth_tokens t JOIN auth_users u ON u.id = t.user_id
		WHERE t.hash = ?`), h).
		Scan(&p.UserId, &p.OrgId, &p.Login, &p.Admin, &p.TokenId, &expires, &revoked, &lastUsed)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, status.Error(codes.Unauthenticated, "invalid token")
	}
	if err != nil {
		return nil, status.Errorf(codes.Internal, "verify token: %v", err)
	}
	now := s.Now()
	if revoked.Valid {
		return nil, status.Error(codes.Unauthenticated, "token revoked")
	}
	if expires.Valid {
		if !now.Before(time.Unix(0, expires.Int64)) {
			return nil, status.Error(codes.Unauthenticated, "token expired")
		}
		p.ExpiresAt = timestamppb.New(time.Unix(0, expires.Int64))
	}
	role, err := effectiveRole(ctx, s.db, s.db, p.UserId, p.OrgId)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "verify token: %v", err)
	}
	p.Role = string(role)
	s.touch(ctx, "auth_tokens", h, lastUsed, now)
	return p, nil
}

// touch records that the token hashed h (in table, auth_tokens or auth_runners) was
// used now, at most once per lastUsedGranularity. Best effort: a failed write must not
// refuse a valid token.
func (s *Service) touch(ctx context.Context, table, h string, lastUsed sql.NullInt64, now time.Time) {
	if !lastUsed.Valid || now.Sub(time.Unix(0, lastUsed.Int64)) >= lastUsedGranularity {
		_, _ = s.db.ExecContext(ctx, s.db.Q(`UPDATE `+table+` SET last_used_at = ? WHERE hash = ?`), now.UnixNano(), h)
	}
}

// Local adapts the service to auth.Verifier for callers in the same process.
type Local struct{ S *Service }

// VerifyToken calls the service directly.
func (l Local) VerifyToken(ctx context.Context, token string) (*authv1.Principal, error) {
	return l.S.VerifyToken(ctx, &authv1.VerifyTokenRequest{Token: token})
}

// Client adapts a gRPC client to auth.Verifier.
type Client struct{ C authv1.AuthServiceClient }

// VerifyToken asks the auth service, with a deadline.
func (c Client) VerifyToken(ctx context.Context, token string) (*authv1.Principal, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return c.C.VerifyToken(ctx, &authv1.VerifyTokenRequest{Token: token})
}
