package postgres

// accountsSchema is the accounts part of the schema (see migrations in schema.go).
const accountsSchema = ``
