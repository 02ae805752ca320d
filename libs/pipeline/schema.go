package pipeline

import _ "embed"

// Schema is the JSON Schema (draft 2020-12) of the pipeline file, for
// editors and for serving at GET /api/v1/schema/pipeline.json. It
// describes every field the parser knows, with descriptions; the parser
// checks the same rules and more (duplicate names and ids, conditions and
// templates that compile, a timeout within the tier's). A test keeps the
// two in step. The bytes are shared: do not modify them.
//
//go:embed schema/pipeline.schema.json
var Schema []byte
