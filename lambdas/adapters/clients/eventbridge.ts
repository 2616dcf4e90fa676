import { EventBridgeClient } from '@aws-sdk/client-eventbridge';

let events: EventBridgeClient | undefined;

export function eventBridgeClient(): EventBridgeClient {
  events ??= new EventBridgeClient({});
  return events;
}
