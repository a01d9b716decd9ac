package v1

import _ "embed"

// openAPIDoc describes /v1; TestOpenAPIMatchesRoutes keeps it true to the
// route table.
//
//go:embed openapi.json
var openAPIDoc []byte
