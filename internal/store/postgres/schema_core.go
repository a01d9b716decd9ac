package postgres

// coreSchema is the core part of the schema (see migrations in schema.go).
const coreSchema = ``
