package auth

import (
	"fmt"
	"slices"
	"strings"

	apiv1 "github.com/simpleci/simpleci/proto/simpleci/api/v1"
	authv1 "github.com/simpleci/simpleci/proto/simpleci/auth/v1"
	"google.golang.org/grpc/codes"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionalphapb "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/grpc/status"
)

// Role is a user's role in an organisation (the auth service's auth_memberships).
type Role string

// The roles, from least to most: each may do everything the one before it may.
const (
	Viewer     Role = "viewer"
	Developer  Role = "developer"
	Maintainer Role = "maintainer"
	Owner      Role = "owner"
)

// Roles lists the roles from least to most.
var Roles = []Role{Viewer, Developer, Maintainer, Owner}

// ParseRole checks a role's name.
func ParseRole(s string) (Role, error) {
	if r := Role(s); slices.Contains(Roles, r) {
		return r, nil
	}
	names := make([]string, len(Roles))
	for i, r := range Roles {
		names[i] = string(r)
	}
	return "", fmt.Errorf("role %q: want one of %s", s, strings.Join(names, ", "))
}

// Permission is something a user may do in an organisation.
type Permission uint8

// The permissions.
const (
	// Authenticated needs no role: a user's own API tokens.
	Authenticated Permission = iota
	// Read reads projects, runs, logs, events and secrets' names.
	Read
	// Run triggers and cancels runs.
	Run
	// Configure creates projects, edits their settings, sets and deletes secrets.
	Configure
	// Administer deletes projects and manages the organisation's members.
	Administer
)

var permissionNames = []string{"authenticated", "read", "run", "configure", "administer"}

func (p Permission) String() string {
	if int(p) < len(permissionNames) {
		return permissionNames[p]
	}
	return fmt.Sprintf("permission(%d)", p)
}

// rolePermission is the most a role may do: the permissions are ordered, so a role
// holds its own and every lesser one.
var rolePermission = map[Role]Permission{Viewer: Read, Developer: Run, Maintainer: Configure, Owner: Administer}

// Grants reports whether role r holds permission p. An unknown role (or none) holds
// only Authenticated.
func (r Role) Grants(p Permission) bool {
	if p == Authenticated {
		return true
	}
	max, ok := rolePermission[r]
	return ok && p <= max
}

// MethodPermission is the one table of what a user needs, in the organisation the call
// acts in (the caller's), to call each method the ACL opens to Users. The interceptor
// checks it (authorize); TestMethodPermissionCoversUsers fails for a user method
// without a row. Methods for admins only (runner tokens) are checked by their handler.
var MethodPermission = map[string]Permission{
	// Server reflection describes the API, not an organisation's data.
	reflectionpb.ServerReflection_ServerReflectionInfo_FullMethodName:      Authenticated,
	reflectionalphapb.ServerReflection_ServerReflectionInfo_FullMethodName: Authenticated,

	apiv1.ProjectService_ListProjects_FullMethodName:  Read,
	apiv1.ProjectService_GetProject_FullMethodName:    Read,
	apiv1.ProjectService_ListSecrets_FullMethodName:   Read,
	apiv1.RunService_ListRuns_FullMethodName:          Read,
	apiv1.RunService_GetRun_FullMethodName:            Read,
	apiv1.RunService_ListRunEvents_FullMethodName:     Read,
	apiv1.RunService_ListTiers_FullMethodName:         Read,
	apiv1.LogService_GetLogs_FullMethodName:           Read,
	apiv1.LogService_TailLogs_FullMethodName:          Read,
	apiv1.FileService_ListArtifacts_FullMethodName:    Read,
	apiv1.FileService_DownloadArtifact_FullMethodName: Read,
	apiv1.FileService_ListCaches_FullMethodName:       Read,
	apiv1.FileService_DeleteCache_FullMethodName:      Configure,
	apiv1.RunService_TriggerRun_FullMethodName:        Run,
	apiv1.RunService_CancelRun_FullMethodName:         Run,
	apiv1.RunService_RerunRun_FullMethodName:          Run,
	apiv1.RunService_ListSchedules_FullMethodName:     Read,
	apiv1.RunService_SetSchedules_FullMethodName:      Configure,
	apiv1.ProjectService_CreateProject_FullMethodName: Configure,
	apiv1.ProjectService_UpdateProject_FullMethodName: Configure,
	apiv1.ProjectService_DeleteProject_FullMethodName: Administer,
	apiv1.ProjectService_SetSecret_FullMethodName:     Configure,
	apiv1.ProjectService_DeleteSecret_FullMethodName:  Configure,
	apiv1.MemberService_ListMembers_FullMethodName:    Read,
	apiv1.MemberService_AddMember_FullMethodName:      Administer,
	apiv1.MemberService_UpdateMember_FullMethodName:   Administer,
	apiv1.MemberService_RemoveMember_FullMethodName:   Administer,
	// Teams give roles, so changing them is the owner's, like members.
	apiv1.TeamService_ListTeams_FullMethodName:        Read,
	apiv1.TeamService_GetTeam_FullMethodName:          Read,
	apiv1.TeamService_CreateTeam_FullMethodName:       Administer,
	apiv1.TeamService_UpdateTeam_FullMethodName:       Administer,
	apiv1.TeamService_DeleteTeam_FullMethodName:       Administer,
	apiv1.TeamService_AddTeamMember_FullMethodName:    Administer,
	apiv1.TeamService_RemoveTeamMember_FullMethodName: Administer,
	// A user's own organisations, whatever its role in the one the call acts in.
	apiv1.OrganizationService_ListOrganizations_FullMethodName:  Authenticated,
	apiv1.OrganizationService_CreateOrganization_FullMethodName: Authenticated,
	apiv1.TokenService_CreateToken_FullMethodName:               Authenticated,
	apiv1.TokenService_ListTokens_FullMethodName:                Authenticated,
	apiv1.TokenService_RevokeToken_FullMethodName:               Authenticated,
	// Admins only, checked by the auth service.
	apiv1.RunnerTokenService_RegisterRunner_FullMethodName: Authenticated,
	apiv1.RunnerTokenService_ListRunners_FullMethodName:    Authenticated,
	apiv1.RunnerTokenService_RevokeRunner_FullMethodName:   Authenticated,

	// The caller's own GitHub repositories, read with the caller's GitHub token.
	apiv1.GitHubService_ListGitHubRepositories_FullMethodName: Read,
}

// Highest returns the most of roles (unknown ones and "" count for nothing), or "".
func Highest(roles ...Role) Role {
	best := -1
	for _, r := range roles {
		if i := slices.Index(Roles, r); i > best {
			best = i
		}
	}
	if best < 0 {
		return ""
	}
	return Roles[best]
}

// RoleOf returns p's role in its organisation (p.OrgId), or "" for none.
func RoleOf(p *authv1.Principal) Role {
	return Role(p.GetRole())
}

// permitted checks a user's role for method; nil for callers that are not users (the
// ACL decides for them). A method without a row is refused: nothing opens by omission.
func permitted(method string, p *authv1.Principal) error {
	if CallerKind(p) != Users {
		return nil
	}
	need, ok := MethodPermission[method]
	if !ok {
		return status.Errorf(codes.PermissionDenied, "%s has no role requirement (libs/platform/auth MethodPermission): refused", method)
	}
	if RoleOf(p).Grants(need) {
		return nil
	}
	role := string(RoleOf(p))
	if role == "" {
		role = "no role"
	}
	return status.Errorf(codes.PermissionDenied, "%s (%s in this organisation) may not %s: that takes %s", Describe(p), role, method[strings.LastIndexByte(method, '/')+1:], leastRole(need))
}

// leastRole names the least role holding need.
func leastRole(need Permission) string {
	for _, r := range Roles {
		if r.Grants(need) {
			return "the " + string(r) + " role or above"
		}
	}
	return "a role"
}
