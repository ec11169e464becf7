import { createHealthApp } from "../../../shared/health.ts";

export default createHealthApp();
