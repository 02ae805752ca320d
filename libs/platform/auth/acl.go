package auth

import (
	"fmt"
	"strings"

	apiv1 "github.com/simpleci/simpleci/proto/simpleci/api/v1"
	authv1 "github.com/simpleci/simpleci/proto/simpleci/auth/v1"
	runnerv1 "github.com/simpleci/simpleci/proto/simpleci/runner/v1"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionalphapb "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
)

// Callers is a set of kinds of caller.
type Callers uint16

// The kinds of caller: users (API tokens), runners (runner tokens) and each service
// identity.
const (
	Users Callers = 1 << iota
	Runners
	GatewayService
	AuthService
	ProjectService
	SchedulerService
	LogService
)

// Services is every service identity.
const Services = GatewayService | AuthService | ProjectService | SchedulerService | LogService

var serviceCallers = map[string]Callers{Gateway: GatewayService, Auth: AuthService, Project: ProjectService,
	Scheduler: SchedulerService, Log: LogService}

// ACL is the one table of who may call what: every gRPC method any service registers,
// with the callers allowed. A method missing here is refused to everyone (the node
// refuses to start with one registered, TestACLCoversEveryMethod checks the protos).
// A user also needs the role MethodPermission (roles.go) names, in its organisation.
// Handlers still check what the tables cannot: a user's organisation, a runner's lease.
//
// Peer calls (each one's client): the gateway resolves a webhook's project
// (ProjectInternalService.ResolveProject, services/gateway), the scheduler a run
// request's (services/scheduler request.go, store.go); the scheduler reads a claimed
// job's secrets (JobSecrets, services/scheduler runner.go); the project service and the
// gateway read the tiers (RunService.ListTiers: services/project checks a project's tier,
// the gateway states them in the API document); every process serving users verifies
// their tokens (AuthService.VerifyToken, libs/platform/node) and checks its peers'
// health (Health.Check); runners speak the runner protocol (services/runner) and send
// their jobs' logs (RunnerLogService.AppendLogs, services/log). The
// gateway forwards users' own tokens for everything else.
var ACL = map[string]Callers{
	// The public API, for users (through the gateway, with their token).
	apiv1.ProjectService_CreateProject_FullMethodName:           Users,
	apiv1.ProjectService_ListProjects_FullMethodName:            Users,
	apiv1.ProjectService_GetProject_FullMethodName:              Users,
	apiv1.ProjectService_UpdateProject_FullMethodName:           Users,
	apiv1.ProjectService_DeleteProject_FullMethodName:           Users,
	apiv1.ProjectService_SetSecret_FullMethodName:               Users,
	apiv1.ProjectService_ListSecrets_FullMethodName:             Users,
	apiv1.ProjectService_DeleteSecret_FullMethodName:            Users,
	apiv1.RunService_TriggerRun_FullMethodName:                  Users,
	apiv1.RunService_ListRuns_FullMethodName:                    Users,
	apiv1.RunService_GetRun_FullMethodName:                      Users,
	apiv1.RunService_CancelRun_FullMethodName:                   Users,
	apiv1.RunService_RerunRun_FullMethodName:                    Users,
	apiv1.RunService_ListSchedules_FullMethodName:               Users,
	apiv1.RunService_SetSchedules_FullMethodName:                Users,
	apiv1.RunService_ListRunEvents_FullMethodName:               Users,
	apiv1.RunService_ListTiers_FullMethodName:                   Users | ProjectService | GatewayService,
	apiv1.LogService_GetLogs_FullMethodName:                     Users,
	apiv1.LogService_TailLogs_FullMethodName:                    Users,
	apiv1.FileService_ListArtifacts_FullMethodName:              Users,
	apiv1.FileService_DownloadArtifact_FullMethodName:           Users,
	apiv1.FileService_ListCaches_FullMethodName:                 Users,
	apiv1.FileService_DeleteCache_FullMethodName:                Users,
	apiv1.TokenService_CreateToken_FullMethodName:               Users,
	apiv1.TokenService_ListTokens_FullMethodName:                Users,
	apiv1.TokenService_RevokeToken_FullMethodName:               Users,
	apiv1.MemberService_ListMembers_FullMethodName:              Users,
	apiv1.MemberService_AddMember_FullMethodName:                Users,
	apiv1.MemberService_UpdateMember_FullMethodName:             Users,
	apiv1.MemberService_RemoveMember_FullMethodName:             Users,
	apiv1.TeamService_ListTeams_FullMethodName:                  Users,
	apiv1.TeamService_GetTeam_FullMethodName:                    Users,
	apiv1.TeamService_CreateTeam_FullMethodName:                 Users,
	apiv1.TeamService_UpdateTeam_FullMethodName:                 Users,
	apiv1.TeamService_DeleteTeam_FullMethodName:                 Users,
	apiv1.TeamService_AddTeamMember_FullMethodName:              Users,
	apiv1.TeamService_RemoveTeamMember_FullMethodName:           Users,
	apiv1.OrganizationService_ListOrganizations_FullMethodName:  Users,
	apiv1.OrganizationService_CreateOrganization_FullMethodName: Users,

	// The caller's GitHub repositories (the auth service holds the caller's GitHub token).
	apiv1.GitHubService_ListGitHubRepositories_FullMethodName: Users,

	// Runner tokens: users (the service refuses all but admins).
	apiv1.RunnerTokenService_RegisterRunner_FullMethodName: Users,
	apiv1.RunnerTokenService_ListRunners_FullMethodName:    Users,
	apiv1.RunnerTokenService_RevokeRunner_FullMethodName:   Users,

	// Between services: project secrets and webhook secrets never reach a runner.
	apiv1.ProjectInternalService_ResolveProject_FullMethodName: GatewayService | SchedulerService,
	apiv1.ProjectInternalService_JobSecrets_FullMethodName:     SchedulerService,
	authv1.AuthService_VerifyToken_FullMethodName:              Services,

	// The runner protocol: runners only (the scheduler checks the lease's holder).
	runnerv1.RunnerService_ClaimJob_FullMethodName:   Runners,
	runnerv1.RunnerService_Heartbeat_FullMethodName:  Runners,
	runnerv1.RunnerService_Report_FullMethodName:     Runners,
	runnerv1.RunnerService_ReleaseJob_FullMethodName: Runners,
	// A runner's log, under the job's log grant (the log service checks it is the
	// caller's): runners reach no event bus.
	runnerv1.RunnerLogService_AppendLogs_FullMethodName: Runners,
	// Caches and artifacts of a runner's job, under the job's files grant (checked by
	// the log service like the log grant).
	runnerv1.RunnerFilesService_RestoreCache_FullMethodName: Runners,
	runnerv1.RunnerFilesService_PutFiles_FullMethodName:     Runners,

	// Readiness: a process checks the peers it calls.
	healthpb.Health_Check_FullMethodName: Services | Runners,
	healthpb.Health_List_FullMethodName:  0,
	healthpb.Health_Watch_FullMethodName: 0,

	// Server reflection: what a process serves, its methods and messages, for grpcurl
	// and other clients that discover the API; to anyone holding a token (it tells
	// nothing the public protos and /openapi.json do not).
	reflectionpb.ServerReflection_ServerReflectionInfo_FullMethodName:      Users | Services | Runners,
	reflectionalphapb.ServerReflection_ServerReflectionInfo_FullMethodName: Users | Services | Runners,
}

// CallerKind is the kind of caller p is (0: none the ACL knows).
func CallerKind(p *authv1.Principal) Callers {
	switch {
	case p.GetRunner() != "":
		return Runners
	case p.GetService() != "":
		return serviceCallers[p.GetService()]
	case p.GetUserId() != "":
		return Users
	}
	return 0
}

// Describe names a caller for error messages and logs (never its token).
func Describe(p *authv1.Principal) string {
	switch {
	case p.GetRunner() != "":
		return "runner " + p.GetRunner()
	case p.GetService() != "":
		return "the " + p.GetService() + " service"
	case p.GetLogin() != "":
		return "user " + p.GetLogin()
	}
	return "an unknown caller"
}

// Allowed reports whether p may call method (a full method name).
func Allowed(method string, p *authv1.Principal) bool {
	kind := CallerKind(p)
	return kind != 0 && ACL[method]&kind != 0
}

// Unlisted returns the methods that have no entry in the ACL and are not public: a
// process serving one of them would refuse it to everyone (the node refuses to start).
func Unlisted(methods []string, public map[string]bool) []string {
	var out []string
	for _, m := range methods {
		if _, ok := ACL[m]; !ok && !public[m] {
			out = append(out, m)
		}
	}
	return out
}

func denied(method string, p *authv1.Principal) string {
	name := method[strings.LastIndexByte(method, '/')+1:]
	if _, ok := ACL[method]; !ok {
		return fmt.Sprintf("%s is open to no caller", method)
	}
	return fmt.Sprintf("%s may not call %s (%s)", Describe(p), name, method)
}
