package service

import (
	"context"
	"database/sql"
	"regexp"
	"time"

	"github.com/simpleci/simpleci/libs/platform/auth"
	"github.com/simpleci/simpleci/libs/platform/id"
	"github.com/simpleci/simpleci/libs/platform/sqldb"
	apiv1 "github.com/simpleci/simpleci/proto/simpleci/api/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// A user's organisations (docs/adr/0021-organisations-and-teams.md). A user may be a
// member of several; every call acts in one, the one its token is bound to.

// MaxCreatedOrganizations bounds how many organisations one user creates.
const MaxCreatedOrganizations = 20

// namePattern is what organisation and team names look like (project names' rule).
var namePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

func validGroupName(what, name string) error {
	if !namePattern.MatchString(name) {
		return status.Errorf(codes.InvalidArgument, "%s name %q: 1 to 63 lower-case letters, digits and '-', starting with a letter or digit", what, name)
	}
	return nil
}

// ListOrganizations lists the caller's organisations with its effective role in each.
func (s *Service) ListOrganizations(ctx context.Context, _ *apiv1.ListOrganizationsRequest) (*apiv1.ListOrganizationsResponse, error) {
	userID, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	p, _ := auth.PrincipalFrom(ctx)
	rows, err := s.db.QueryContext(ctx, s.db.Q(`SELECT o.id, o.name, o.created_at FROM auth_memberships m JOIN auth_orgs o ON o.id = m.org_id WHERE m.user_id = ? ORDER BY o.name`), userID)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "list organisations: %v", err)
	}
	type org struct {
		id string
		o  *apiv1.Organization
	}
	var orgs []org
	for rows.Next() {
		o := &apiv1.Organization{}
		var orgID string
		var created int64
		if err := rows.Scan(&orgID, &o.Name, &created); err != nil {
			rows.Close()
			return nil, status.Errorf(codes.Internal, "list organisations: %v", err)
		}
		o.CreatedAt = timestamppb.New(time.Unix(0, created))
		o.Current = orgID == p.GetOrgId()
		orgs = append(orgs, org{orgID, o})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, status.Errorf(codes.Internal, "list organisations: %v", err)
	}
	out := &apiv1.ListOrganizationsResponse{}
	for _, o := range orgs {
		role, err := effectiveRole(ctx, s.db, s.db, userID, o.id)
		if err != nil {
			return nil, status.Errorf(codes.Internal, "list organisations: %v", err)
		}
		o.o.Role = string(role)
		out.Organizations = append(out.Organizations, o.o)
	}
	return out, nil
}

// CreateOrganization creates an organisation owned by the caller.
func (s *Service) CreateOrganization(ctx context.Context, req *apiv1.CreateOrganizationRequest) (*apiv1.Organization, error) {
	userID, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if err := validGroupName("organisation", req.GetName()); err != nil {
		return nil, err
	}
	now := s.Now()
	err = s.db.Tx(ctx, func(tx *sql.Tx) error {
		var created int
		if err := tx.QueryRowContext(ctx, s.db.Q(`SELECT COUNT(*) FROM auth_orgs WHERE created_by = ?`), userID).Scan(&created); err != nil {
			return err
		}
		if created >= MaxCreatedOrganizations {
			return status.Errorf(codes.ResourceExhausted, "you created %d organisations, the most allowed", created)
		}
		orgID := id.New()
		_, err := tx.ExecContext(ctx, s.db.Q(`INSERT INTO auth_orgs (id, name, created_at, created_by) VALUES (?, ?, ?, ?)`), orgID, req.GetName(), now.UnixNano(), userID)
		if sqldb.IsUniqueViolation(err) {
			return status.Errorf(codes.AlreadyExists, "organisation %q exists", req.GetName())
		}
		if err != nil {
			return err
		}
		return setRole(ctx, s.db, tx, userID, orgID, string(auth.Owner), now.UnixNano())
	})
	if err != nil {
		return nil, txError("create organisation", err)
	}
	return &apiv1.Organization{Name: req.GetName(), Role: string(auth.Owner), CreatedAt: timestamppb.New(now)}, nil
}
