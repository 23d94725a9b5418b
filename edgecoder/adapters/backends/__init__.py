"""Inference backends: embedded llama.cpp and the Ollama daemon, behind one interface."""
