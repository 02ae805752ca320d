package service

import (
	"net/http"
	"slices"
	"strings"

	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// route is one method and path template of the public API.
type route struct {
	method string
	segs   []string // "/"-separated; "{x}" is any non-empty segment, "{x}:verb" one ending in ":verb"
}

// routes is the public API's route table: every google.api.http rule of the linked
// protos under /api/ plus the gateway's own handlers. It answers which methods a path
// has, so that a method a path lacks is refused with 405 and an Allow header before
// anything else happens (grpc-gateway alone answers 501 without Allow).
type routes []route

func (rt routes) add(method, template string) routes {
	return append(rt, route{method: method, segs: strings.Split(strings.Trim(template, "/"), "/")})
}

// apiRoutes reads the HTTP rules of every registered service.
func apiRoutes() routes {
	var rt routes
	protoregistry.GlobalFiles.RangeFiles(func(f protoreflect.FileDescriptor) bool {
		svcs := f.Services()
		for i := range svcs.Len() {
			ms := svcs.Get(i).Methods()
			for j := range ms.Len() {
				opts := ms.Get(j).Options()
				if opts == nil || !proto.HasExtension(opts, annotations.E_Http) {
					continue
				}
				rule, _ := proto.GetExtension(opts, annotations.E_Http).(*annotations.HttpRule)
				for _, r := range append([]*annotations.HttpRule{rule}, rule.GetAdditionalBindings()...) {
					method, path := httpRule(r)
					if method != "" && strings.HasPrefix(path, "/api/") {
						rt = rt.add(method, path)
					}
				}
			}
		}
		return true
	})
	return rt
}

func httpRule(r *annotations.HttpRule) (method, path string) {
	switch p := r.GetPattern().(type) {
	case *annotations.HttpRule_Get:
		return http.MethodGet, p.Get
	case *annotations.HttpRule_Post:
		return http.MethodPost, p.Post
	case *annotations.HttpRule_Put:
		return http.MethodPut, p.Put
	case *annotations.HttpRule_Delete:
		return http.MethodDelete, p.Delete
	case *annotations.HttpRule_Patch:
		return http.MethodPatch, p.Patch
	case *annotations.HttpRule_Custom:
		return p.Custom.GetKind(), p.Custom.GetPath()
	}
	return "", ""
}

// allowed returns the methods path has, sorted; none for a path the API does not have.
func (rt routes) allowed(path string) []string {
	segs := strings.Split(strings.Trim(path, "/"), "/")
	var out []string
	for _, r := range rt {
		if r.match(segs) && !slices.Contains(out, r.method) {
			out = append(out, r.method)
		}
	}
	slices.Sort(out)
	return out
}

func (r route) match(segs []string) bool {
	if len(segs) != len(r.segs) {
		return false
	}
	for i, t := range r.segs {
		s := segs[i]
		if !strings.HasPrefix(t, "{") {
			if s != t {
				return false
			}
			continue
		}
		// No id or name the API uses holds a ':', so "{x}" never takes a custom verb:
		// /runs/r1:cancel is the cancel route only, not also the run "r1:cancel".
		_, verb, _ := strings.Cut(t, "}")
		if v, ok := strings.CutSuffix(s, verb); !ok || v == "" || strings.Contains(v, ":") {
			return false
		}
	}
	return true
}
