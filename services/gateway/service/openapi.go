package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/getkin/kin-openapi/openapi2"
	"github.com/getkin/kin-openapi/openapi2conv"
	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/simpleci/simpleci/libs/forge/github"
	"github.com/simpleci/simpleci/proto/simpleci/api/openapi"
	"google.golang.org/grpc/codes"
)

// The REST API's contract. The generated OpenAPI 2.0 document (proto/simpleci/api/openapi:
// the protos' HTTP rules plus openapi.yaml's required fields, patterns, lengths, formats,
// enums and statuses) is converted to OpenAPI 3.0 and completed here with what is the
// same for every operation. The result is served at /openapi.json, and every API request
// is validated against it before it is forwarded: the document is the one statement of
// what the API accepts, so it cannot drift from what the gateway lets through.

// completeSpec converts the generated document and adds what every operation shares:
// bearer authentication, the error shape for every error status, the statuses the
// gateway itself answers, closed request and response objects, and deployment-specific
// enums (the forges and tiers this deployment serves; nil leaves a field open).
func completeSpec(swagger []byte, providers, tiers []string) (*openapi3.T, error) {
	var d2 openapi2.T
	if err := json.Unmarshal(swagger, &d2); err != nil {
		return nil, fmt.Errorf("openapi: %w", err)
	}
	doc, err := openapi2conv.ToV3(&d2)
	if err != nil {
		return nil, fmt.Errorf("openapi: convert to 3.0: %w", err)
	}
	doc.Info.Title, doc.Info.Version = "SimpleCI API", "v1"
	doc.Info.Description = "SimpleCI's REST API (docs/api.md). Every request is validated against this document " +
		"before it reaches a service: what it states is what the server accepts."
	doc.Servers = openapi3.Servers{{URL: "/"}}
	doc.Components.SecuritySchemes = openapi3.SecuritySchemes{"bearer": &openapi3.SecuritySchemeRef{
		Value: openapi3.NewJWTSecurityScheme().WithBearerFormat("SimpleCI API token")}}
	doc.Security = openapi3.SecurityRequirements{{"bearer": []string{}}}

	// The one error shape of the API, the gateway's and grpc-gateway's alike.
	errSchema := &openapi3.Schema{
		Type:        &openapi3.Types{openapi3.TypeObject},
		Description: "An error: the gRPC status code, a message saying what and where, and details (usually none).",
		Required:    []string{"code", "message"},
		Properties: openapi3.Schemas{
			"code":    openapi3.NewInt32Schema().NewRef(),
			"message": openapi3.NewStringSchema().NewRef(),
			"details": openapi3.NewArraySchema().WithItems(openapi3.NewObjectSchema().WithAnyAdditionalProperties()).NewRef(),
		},
	}
	doc.Components.Schemas["Error"] = &openapi3.SchemaRef{Value: errSchema}
	// Closed objects: a property the document does not name is refused (400), as the
	// services' JSON decoding refuses unknown fields. Free-form ones (Struct, Any) stay open.
	no := false
	for name, s := range doc.Components.Schemas {
		if s.Value != nil && s.Value.Type.Is(openapi3.TypeObject) && !strings.HasPrefix(name, "protobuf") &&
			s.Value.AdditionalProperties.Has == nil && s.Value.AdditionalProperties.Schema == nil {
			s.Value.AdditionalProperties.Has = &no
		}
	}
	if p := property(doc, "v1CreateProjectRequest", "provider"); p != nil && providers != nil {
		p.Enum = anySlice(providers)
	}
	// The github provider's repositories are "owner/name", which the static pattern
	// (paths and URLs, for local) does not admit. OpenAPI 3.0 cannot tie a pattern to
	// another field's value, so a deployment serving github admits both forms and the
	// forge of the chosen provider refuses the other (400).
	if p := property(doc, "v1CreateProjectRequest", "repository"); p != nil && slices.Contains(providers, github.Name) {
		if base, ok := strings.CutSuffix(p.Pattern, ")$"); ok && strings.HasPrefix(base, "^(") {
			p.Pattern = base + "|" + github.RepositoryPattern + ")$"
		}
	}
	for _, body := range []string{"v1CreateProjectRequest", "ProjectServiceUpdateProjectBody"} {
		if p := property(doc, body, "tier"); p != nil && tiers != nil {
			p.Enum = anySlice(append([]string{""}, tiers...))
		}
	}
	errContent := openapi3.NewContentWithJSONSchemaRef(openapi3.NewSchemaRef("#/components/schemas/Error", errSchema))
	for _, item := range doc.Paths.Map() {
		for _, op := range item.Operations() {
			common := map[string]string{
				"400": "The request does not match this document (the message names the field and why), or a rule of the service refused it.",
				"401": "No bearer token, or one that is unknown, expired or revoked.",
				"403": "The token may not do this.",
				"405": "The path has no such method (the Allow header lists those it has).",
				"503": "A service this call needs is unavailable or shutting down: retry.",
			}
			if op.RequestBody != nil {
				common["413"] = fmt.Sprintf("The body is larger than %d bytes.", MaxAPIBody)
			}
			for code, desc := range common {
				if op.Responses.Value(code) == nil {
					op.Responses.Set(code, &openapi3.ResponseRef{Value: openapi3.NewResponse().WithDescription(desc)})
				}
			}
			for code, r := range op.Responses.Map() {
				if !strings.HasPrefix(code, "2") && r.Value != nil {
					r.Value.Content = errContent
				}
			}
			if op.RequestBody != nil && op.RequestBody.Value != nil {
				// A body without a required field may be left out: it means {}.
				s := op.RequestBody.Value.Content.Get("application/json").Schema
				op.RequestBody.Value.Required = s != nil && s.Value != nil && len(s.Value.Required) > 0
			}
		}
	}
	addGatewayOperations(doc, providers, errContent)
	doc.SetStringFormatValidator("date-time", openapi3.NewCallbackValidator(func(s string) error {
		// What the services parse: Go's RFC 3339.
		if _, err := time.Parse(time.RFC3339, s); err != nil {
			return errors.New("not an RFC 3339 time such as 2026-01-02T15:04:05Z")
		}
		return nil
	}))
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("openapi: the completed document is invalid: %w", err)
	}
	return doc, nil
}

func property(doc *openapi3.T, schema, prop string) *openapi3.Schema {
	s := doc.Components.Schemas[schema]
	if s == nil || s.Value == nil || s.Value.Properties[prop] == nil {
		return nil
	}
	return s.Value.Properties[prop].Value
}

func anySlice(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// contract is one version of the completed document: served as JSON and used to
// validate requests.
type contract struct {
	key    string // the deployment-specific enums it was built with
	doc    *openapi3.T
	json   []byte
	routes []specRoute
}

type specRoute struct {
	route
	path   string
	item   *openapi3.PathItem
	op     *openapi3.Operation
	params []string // the names of the template's parameters, by segment ("" for a literal)
}

func newContract(key string, doc *openapi3.T) (*contract, error) {
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	c := &contract{key: key, doc: doc, json: b}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			r := specRoute{route: routes{}.add(method, path)[0], path: path, item: item, op: op}
			for _, s := range r.segs {
				name := ""
				if strings.HasPrefix(s, "{") {
					name, _, _ = strings.Cut(strings.TrimPrefix(s, "{"), "}")
				}
				r.params = append(r.params, name)
			}
			c.routes = append(c.routes, r)
		}
	}
	return c, nil
}

// contracts builds the document for the deployment's current forges and tiers, again
// when the served tiers change.
type contracts struct {
	providers []string
	tiers     func(context.Context) ([]string, error)
	mu        sync.Mutex
	cur       *contract
}

func (cs *contracts) get(ctx context.Context) (*contract, error) {
	var tiers []string
	if cs.tiers != nil {
		var err error
		if tiers, err = cs.tiers(ctx); err != nil {
			tiers = nil // unknown now: the field stays open, the project service decides
		}
	}
	key := strings.Join(cs.providers, ",") + "|" + strings.Join(tiers, ",")
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.cur != nil && (cs.cur.key == key || tiers == nil) {
		return cs.cur, nil
	}
	doc, err := completeSpec(openapi.Swagger, cs.providers, tiers)
	if err != nil {
		return nil, err
	}
	c, err := newContract(key, doc)
	if err != nil {
		return nil, err
	}
	cs.cur = c
	return c, nil
}

// serveSpec serves the completed document: public, like the rest of the documentation.
func (g *gateway) serveSpec(w http.ResponseWriter, r *http.Request) {
	c, err := g.contracts.get(r.Context())
	if err != nil {
		g.log.Error("openapi document", "err", err)
		writeError(w, http.StatusInternalServerError, codes.Internal, "the API document cannot be built")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=60")
	w.Write(c.json)
}

// validate checks a request against the document. It returns "" for a request the
// document allows (or a path it does not have), else a message naming the parameter or
// body field and why.
func (g *gateway) validate(r *http.Request) (string, error) {
	c, err := g.contracts.get(r.Context())
	if err != nil {
		return "", err
	}
	segs := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	for _, rt := range c.routes {
		if rt.method != r.Method || !rt.match(segs) {
			continue
		}
		params := map[string]string{}
		for i, name := range rt.params {
			if name != "" {
				_, verb, _ := strings.Cut(rt.segs[i], "}")
				params[name] = strings.TrimSuffix(segs[i], verb)
			}
		}
		// grpc-gateway reads every body as JSON, whatever its Content-Type says (curl's
		// -d sends application/x-www-form-urlencoded): validate it as what it is read as.
		vr := r.Clone(r.Context())
		vr.Header.Set("Content-Type", "application/json")
		in := &openapi3filter.RequestValidationInput{
			Request: vr, PathParams: params,
			Route: &routers.Route{Spec: c.doc, Path: rt.path, PathItem: rt.item, Method: rt.method, Operation: rt.op},
			Options: &openapi3filter.Options{
				// The token is checked by the services; here only its presence (api).
				AuthenticationFunc:                openapi3filter.NoopAuthenticationFunc,
				RejectWhenRequestBodyNotSpecified: true,
			},
		}
		err := openapi3filter.ValidateRequest(r.Context(), in)
		r.Body = vr.Body // what was read, put back for grpc-gateway
		if err != nil {
			return describe(err), nil
		}
		return "", nil
	}
	return "", nil // a path the document does not have: grpc-gateway answers 404
}

// describe turns a validation error into a message that names where and why, without
// the value (a secret may be one).
func describe(err error) string {
	var re *openapi3filter.RequestError
	if !errors.As(err, &re) {
		return "invalid request: " + err.Error()
	}
	where := "request body"
	if re.Parameter != nil {
		where = re.Parameter.In + " parameter " + re.Parameter.Name
	}
	var se *openapi3.SchemaError
	if errors.As(re.Err, &se) {
		path, reason := se.JSONPointer(), se.Reason
		if se.SchemaField == "pattern" && se.Schema != nil && len(se.Schema.Pattern) > 60 {
			reason = "string doesn't match the pattern that /openapi.json states for it"
		}
		if _, ok := quoted(reason, "property ", " is missing"); ok && se.SchemaField == "required" {
			reason = "required" // the path names the property already
		}
		if name, ok := quoted(reason, "property ", " is unsupported"); ok {
			path, reason = append(path, name), "unknown field"
			if se.Schema != nil {
				reason += " (known fields: " + strings.Join(slices.Sorted(maps.Keys(se.Schema.Properties)), ", ") + ")"
			}
		}
		// The rule in words, where the document gives them ("4 to 65536 characters: a
		// shorter value could not be masked in logs").
		if d := ruleDescription(re, se); d != "" && reason != "required" && !strings.HasPrefix(reason, "unknown field") {
			reason += " (" + d + ")"
		}
		if len(path) > 0 {
			if re.Parameter == nil {
				where = "body field " + strings.Join(path, ".")
			} else {
				where += " " + strings.Join(path, ".")
			}
		}
		return where + ": " + reason
	}
	switch {
	case errors.Is(re.Err, openapi3filter.ErrInvalidRequired), errors.Is(re.Err, openapi3filter.ErrInvalidEmptyValue):
		return where + ": required"
	case re.Err != nil:
		return where + ": " + unwrapParse(re.Err)
	}
	return where + ": " + re.Reason
}

func unwrapParse(err error) string {
	var pe *openapi3filter.ParseError
	if errors.As(err, &pe) {
		if pe.Kind == openapi3filter.KindInvalidFormat && pe.Reason == "" {
			return "not JSON"
		}
		return "cannot be parsed: " + pe.Reason
	}
	return err.Error()
}

// quoted returns the quoted name in a reason such as `property "x" is missing`.
func quoted(reason, prefix, suffix string) (string, bool) {
	q, ok := strings.CutPrefix(reason, prefix)
	if q, ok2 := strings.CutSuffix(q, suffix); ok && ok2 {
		if name, err := strconv.Unquote(q); err == nil {
			return name, true
		}
	}
	return "", false
}

// ruleDescription is the description of the schema that refused the value, or of the
// parameter, without its final period.
func ruleDescription(re *openapi3filter.RequestError, se *openapi3.SchemaError) string {
	d := ""
	if se.Schema != nil {
		d = se.Schema.Description
	}
	if d == "" && re.Parameter != nil {
		d = re.Parameter.Description
	}
	return strings.TrimSuffix(strings.TrimSpace(d), ".")
}

// addGatewayOperations states the routes the gateway serves itself, outside grpc-gateway:
// the webhook intake, the live log tail, and the two public documents. The log tail is
// validated like the API; a webhook is not (its body is verified byte for byte before it
// is parsed, and an unknown project is answered before it is read), so its document
// states only what the handler itself refuses.
func addGatewayOperations(doc *openapi3.T, providers []string, errContent openapi3.Content) {
	errResp := func(desc string) *openapi3.ResponseRef {
		return &openapi3.ResponseRef{Value: openapi3.NewResponse().WithDescription(desc).WithContent(errContent)}
	}
	jsonResp := func(desc string, schema *openapi3.Schema) *openapi3.ResponseRef {
		return &openapi3.ResponseRef{Value: openapi3.NewResponse().WithDescription(desc).WithJSONSchema(schema)}
	}
	methodNotAllowed := errResp("The path has no such method (the Allow header lists those it has).")
	public := openapi3.NewSecurityRequirements() // no token
	pathParam := func(name, desc string, schema *openapi3.Schema) *openapi3.ParameterRef {
		return &openapi3.ParameterRef{Value: openapi3.NewPathParameter(name).WithDescription(desc).WithSchema(schema)}
	}
	project := openapi3.NewStringSchema().WithPattern(`^[a-z0-9][a-z0-9-]{0,62}$`).WithMaxLength(63)
	provider := openapi3.NewStringSchema().WithMaxLength(32)
	if providers != nil {
		provider.Enum = anySlice(providers)
	}

	webhook := openapi3.NewOperation()
	webhook.OperationID, webhook.Tags, webhook.Security = "Gateway_Webhook", []string{"Webhooks"}, public
	webhook.Summary = "Webhook intake: a forge's signed delivery requests a run (docs/api.md#webhooks)."
	webhook.Parameters = openapi3.Parameters{
		pathParam("provider", "The project's forge.", provider),
		pathParam("project", "The project's id or name.", project),
		{Value: openapi3.NewHeaderParameter("X-Hub-Signature-256").WithRequired(true).
			WithDescription("sha256= and the hex HMAC-SHA256 of the body with the project's webhook secret; checked before the body is parsed.").
			WithSchema(openapi3.NewStringSchema().WithMaxLength(128))},
		{Value: openapi3.NewHeaderParameter("X-GitHub-Event").WithDescription("The event; default push.").
			WithSchema(openapi3.NewStringSchema().WithMaxLength(64))},
		{Value: openapi3.NewHeaderParameter("X-GitHub-Delivery").WithDescription("The delivery's id: the same id names the same run.").
			WithSchema(openapi3.NewStringSchema().WithMaxLength(128))},
	}
	webhook.RequestBody = &openapi3.RequestBodyRef{Value: openapi3.NewRequestBody().WithRequired(true).
		WithDescription("The forge's payload, e.g. {\"ref\", \"after\", \"sender\": {\"login\"}}.").
		WithJSONSchema(openapi3.NewObjectSchema().WithAnyAdditionalProperties())}
	webhook.Responses = openapi3.NewResponses(
		openapi3.WithStatus(202, jsonResp("Accepted: the runs it requested.", openapi3.NewObjectSchema().
			WithProperty("runIds", openapi3.NewArraySchema().WithItems(openapi3.NewStringSchema())))),
		openapi3.WithStatus(200, jsonResp("Ignored: an event the project does not run on, a ping, a branch deletion.",
			openapi3.NewObjectSchema().WithProperty("ignored", openapi3.NewStringSchema()))),
		openapi3.WithStatus(400, errResp("The payload cannot be parsed.")),
		openapi3.WithStatus(401, errResp("A bad or missing signature; nothing is created.")),
		openapi3.WithStatus(404, errResp("No such provider or project (answered before the body is read).")),
		openapi3.WithStatus(405, methodNotAllowed),
		openapi3.WithStatus(409, errResp("The body was accepted before under another delivery id or none: a replay.")),
		openapi3.WithStatus(413, errResp(fmt.Sprintf("The body is larger than %d bytes.", MaxWebhookBody))),
		openapi3.WithStatus(422, errResp("The run request it would make exceeds the event size limit.")),
		openapi3.WithStatus(429, errResp("Past the project's webhook rate: retry after Retry-After seconds.")),
		openapi3.WithStatus(503, errResp("The delivery cannot be accepted now: retry it.")),
	)
	doc.AddOperation("/api/v1/webhooks/{provider}/{project}", http.MethodPost, webhook)

	// One server-sent event: log (data: a LogChunk as JSON, id: its sequence), end (the log
	// is complete) or error (data: {"message"}).
	sseEvent := openapi3.NewObjectSchema().
		WithProperty("event", openapi3.NewStringSchema().WithEnum("log", "end", "error")).
		WithProperty("data", openapi3.NewStringSchema()).
		WithProperty("id", openapi3.NewStringSchema().WithPattern(`^[0-9]+$`))
	stream := openapi3.NewOperation()
	stream.OperationID, stream.Tags = "Gateway_StreamLogs", []string{"LogService"}
	stream.Summary = "The live log tail as server-sent events: event: log per chunk (id: its sequence), event: end when complete."
	stream.Parameters = openapi3.Parameters{
		pathParam("run", "The run's id.", openapi3.NewStringSchema().WithMaxLength(64)),
		{Value: openapi3.NewQueryParameter("after").WithDescription("Resume after this sequence number (as Last-Event-ID).").
			WithSchema(openapi3.NewStringSchema().WithPattern(`^(0|[1-9][0-9]{0,17})$`))},
	}
	stream.Responses = openapi3.NewResponses(
		openapi3.WithStatus(200, &openapi3.ResponseRef{Value: openapi3.NewResponse().WithDescription("The stream; headers are sent at once.").
			WithContent(openapi3.Content{"text/event-stream": openapi3.NewMediaType().WithSchema(sseEvent)})}),
		openapi3.WithStatus(400, errResp("A parameter does not match this document.")),
		openapi3.WithStatus(401, errResp("No bearer token, or one that is unknown, expired or revoked.")),
		openapi3.WithStatus(403, errResp("The token may not do this.")),
		openapi3.WithStatus(404, errResp("No such run in the caller's organisation (answered at once).")),
		openapi3.WithStatus(405, methodNotAllowed),
		openapi3.WithStatus(429, errResp("The token holds the most log streams allowed at once.")),
		openapi3.WithStatus(503, errResp("A service this call needs is unavailable: retry.")),
	)
	doc.AddOperation("/api/v1/runs/{run}/logs:stream", http.MethodGet, stream)

	download := openapi3.NewOperation()
	download.OperationID, download.Tags = "Gateway_DownloadArtifact", []string{"FileService"}
	download.Summary = "An artifact's bytes (tar+zstd), checked against the SHA-256 recorded when it was stored (X-Checksum-Sha256)."
	download.Parameters = openapi3.Parameters{
		pathParam("run", "The run's id.", openapi3.NewStringSchema().WithPattern(`^[0-9a-z]{26}$`)),
		pathParam("name", "The artifact's name (its store-files step's key).", openapi3.NewStringSchema().WithMinLength(1).WithMaxLength(256)),
	}
	download.Responses = openapi3.NewResponses(
		openapi3.WithStatus(200, &openapi3.ResponseRef{Value: openapi3.NewResponse().WithDescription("The artifact.").
			WithContent(openapi3.Content{"application/zstd": openapi3.NewMediaType().WithSchema(openapi3.NewStringSchema().WithFormat("binary"))})}),
		openapi3.WithStatus(400, errResp("A parameter does not match this document.")),
		openapi3.WithStatus(401, errResp("No bearer token, or one that is unknown, expired or revoked.")),
		openapi3.WithStatus(403, errResp("The token may not do this.")),
		openapi3.WithStatus(404, errResp("No such run in the caller's organisation, or no such artifact (or it expired).")),
		openapi3.WithStatus(405, methodNotAllowed),
		openapi3.WithStatus(503, errResp("A service this call needs is unavailable: retry.")),
	)
	doc.AddOperation("/api/v1/runs/{run}/artifacts/{name}", http.MethodGet, download)

	for path, desc := range map[string]string{
		"/api/v1/schema/pipeline.json": "The pipeline file's JSON Schema.",
		"/openapi.json":                "This document.",
	} {
		op := openapi3.NewOperation()
		op.OperationID, op.Tags, op.Security, op.Summary = "Gateway_"+strings.Trim(path, "/"), []string{"Documents"}, public, desc
		ct := "application/json"
		if strings.Contains(path, "schema") {
			ct = "application/schema+json"
		}
		op.Responses = openapi3.NewResponses(
			openapi3.WithStatus(200, &openapi3.ResponseRef{Value: openapi3.NewResponse().WithDescription(desc).
				WithContent(openapi3.Content{ct: openapi3.NewMediaType().WithSchema(openapi3.NewObjectSchema().WithAnyAdditionalProperties())})}),
			openapi3.WithStatus(405, methodNotAllowed),
		)
		doc.AddOperation(path, http.MethodGet, op)
	}
}
