//! Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document; MCP 2025-11-25
//! §5.1): the client's `client_id` is an https URL and the authorization server fetches the
//! client's metadata from it. To test what an AS does with such documents, authconform must be
//! the client's web host: [`host`] serves the documents, shaped per case, and logs every fetch.

pub mod host;
