package postgres

// clusterSchema is the cluster part of the schema (see migrations in schema.go).
const clusterSchema = ``
