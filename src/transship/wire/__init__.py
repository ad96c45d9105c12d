"""The wire format: pydantic models of the JSON bodies the server takes and answers, shared by
the server (which validates and serialises with them, and documents them in its OpenAPI
document) and the clients (which parse answers into them). Pure values: nothing here imports
server code, so the client commands may import it."""
