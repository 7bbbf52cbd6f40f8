// @tapfit/core/testing: the plugin author's kit (gradient check, leak check, test trainer, conformance suite).
export {};
